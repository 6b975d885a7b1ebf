import { describe, expect, it } from 'vitest';

import {
  BufferWriter,
  encodeHelloFrame,
  encodeNodeHelloFrame,
  helloAtStreamStart,
  nodeHelloAtStreamStart,
  nodeProtocolVersion,
  protocolVersion,
} from '../../src/transport/index.js';

const hello = {
  protocolVersion,
  purpose: 'snapshot',
  clusterId: 'impulse',
  groupId: 'g2',
  senderId: 3,
  receiverId: 1,
  nonce: new Uint8Array(32).fill(7),
  proof: new Uint8Array(0),
} as const;

function helloBytes(): Buffer {
  const writer = new BufferWriter();
  encodeHelloFrame(writer, hello);
  return Buffer.from(writer.takeBytes());
}

describe('helloAtStreamStart', () => {
  it('reads the hello once its frame is complete, whatever follows it', () => {
    const bytes = helloBytes();
    for (let length = 0; length < bytes.length; length++) {
      expect(helloAtStreamStart(bytes.subarray(0, length))).toBeUndefined();
    }
    expect(helloAtStreamStart(bytes)).toEqual(hello);
    expect(helloAtStreamStart(Buffer.concat([bytes, Buffer.from('more frames')]))).toEqual(hello);
  });

  it('answers null for bytes that are not a hello frame', () => {
    const damaged = helloBytes();
    const last = damaged.length - 1;
    damaged.writeUInt8(damaged.readUInt8(last) ^ 0xff, last);
    expect(helloAtStreamStart(damaged)).toBeNull();
    expect(helloAtStreamStart(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).toBeNull();
  });
});

describe('nodeHelloAtStreamStart', () => {
  const nodeHello = {
    protocolVersion: nodeProtocolVersion,
    purpose: 'messages',
    clusterId: 'impulse',
    senderAddress: '127.0.0.1:7101',
    receiverAddress: '127.0.0.1:7102',
    nonce: new Uint8Array(32).fill(5),
    proof: new Uint8Array(0),
  } as const;

  function nodeHelloBytes(): Buffer {
    const writer = new BufferWriter();
    encodeNodeHelloFrame(writer, nodeHello);
    return Buffer.from(writer.takeBytes());
  }

  it('reads the node hello once its frame is complete, whatever follows it', () => {
    const bytes = nodeHelloBytes();
    for (let length = 0; length < bytes.length; length++) {
      expect(nodeHelloAtStreamStart(bytes.subarray(0, length))).toBeUndefined();
    }
    expect(nodeHelloAtStreamStart(bytes)).toEqual(nodeHello);
    expect(nodeHelloAtStreamStart(Buffer.concat([bytes, Buffer.from('more frames')]))).toEqual(nodeHello);
  });

  it("answers null for a replica's hello, and a node's hello is not a replica's", () => {
    expect(nodeHelloAtStreamStart(helloBytes())).toBeNull();
    expect(helloAtStreamStart(nodeHelloBytes())).toBeNull();
    expect(nodeHelloAtStreamStart(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).toBeNull();
  });
});
