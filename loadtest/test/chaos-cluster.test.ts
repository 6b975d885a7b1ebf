import { BufferWriter, encodeNodeHelloFrame } from '@impulse/shard-node';
import { describe, expect, it } from 'vitest';
import { nodeDiallerOf } from '../src/chaos/chaos-cluster.js';

/** The node hello a node at `senderAddress` opens a connection to `receiverAddress` with. */
function nodeHelloBytes(senderAddress: string, receiverAddress: string): Buffer {
  const writer = new BufferWriter();
  encodeNodeHelloFrame(writer, {
    protocolVersion: 1,
    purpose: 'messages',
    clusterId: 'impulse',
    senderAddress,
    receiverAddress,
    nonce: new Uint8Array(32).fill(9),
    proof: new Uint8Array(0),
  });
  return Buffer.from(writer.takeBytes());
}

// The fault proxy between nodes names each connection's dialler from the node hello, by the proxy
// ports the nodes advertise.
describe('the proxy names the dialling node', () => {
  const nodeByAddress = new Map([
    ['127.0.0.1:9001', 'n1'],
    ['127.0.0.1:9002', 'n2'],
    ['127.0.0.1:9003', 'n3'],
  ]);
  const dialler = nodeDiallerOf(nodeByAddress);

  it('from the sender address of a complete hello, once it is complete', () => {
    const bytes = nodeHelloBytes('127.0.0.1:9002', '127.0.0.1:9003');
    expect(dialler(bytes.subarray(0, bytes.length - 1), 'n3')).toBeUndefined();
    expect(dialler(bytes, 'n3')).toBe('n2');
  });

  it('refuses a hello naming another node than the one reached, or an address no node has', () => {
    expect(dialler(nodeHelloBytes('127.0.0.1:9002', '127.0.0.1:9001'), 'n3')).toBeNull();
    expect(dialler(nodeHelloBytes('127.0.0.1:9009', '127.0.0.1:9003'), 'n3')).toBeNull();
    expect(dialler(Buffer.from('GET / HTTP/1.1\r\n\r\n'), 'n3')).toBeNull();
  });
});
