import { describe, expect, it } from 'vitest';

import {
  BufferWriter,
  encodeHelloFrame,
  helloAtStreamStart,
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
