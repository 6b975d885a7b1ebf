/**
 * How membership changes travel in the log: encoding into entry data, decoding, and classifying a
 * change (simple, enter joint, leave joint) as etcd's ConfChangeV2 does.
 *
 * The encoding is JSON (UTF-8): conf changes are rare and small, and a readable encoding makes
 * logs and transcripts easy to check. Context bytes are encoded as hex.
 */
import { EMPTY_BYTES } from './entry.js';
import { assert } from './errors.js';
import type {
  ConfChange,
  ConfChangeSingle,
  ConfChangeTransition,
  ConfChangeType,
  ConfChangeV2,
  EntryType,
} from './types.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const changeTypes: readonly ConfChangeType[] = ['addNode', 'addLearnerNode', 'removeNode'];
const transitions: readonly ConfChangeTransition[] = ['auto', 'implicit', 'explicit'];

export function isConfChangeV2(change: ConfChange | ConfChangeV2): change is ConfChangeV2 {
  return 'changes' in change;
}

/** Views any conf change as a ConfChangeV2 (a V1 change is a V2 with one change, auto). */
export function asConfChangeV2(change: ConfChange | ConfChangeV2): ConfChangeV2 {
  if (isConfChangeV2(change)) {
    return change;
  }
  return {
    transition: 'auto',
    changes: [{ type: change.type, nodeId: change.nodeId }],
    ...(change.context === undefined ? {} : { context: change.context }),
  };
}

/** Whether this change leaves a joint configuration: an auto change with no changes. */
export function isLeaveJoint(change: ConfChangeV2): boolean {
  return change.transition === 'auto' && change.changes.length === 0;
}

/**
 * Whether this change enters a joint configuration, and if so whether it leaves it automatically.
 * An auto change with a single change is applied directly (a simple change), anything else is
 * joint; explicit joint changes wait for the application to propose the leave.
 */
export function enterJointOf(change: ConfChangeV2): { enter: boolean; autoLeave: boolean } {
  if (change.transition !== 'auto' || change.changes.length > 1) {
    return { enter: true, autoLeave: change.transition !== 'explicit' };
  }
  return { enter: false, autoLeave: false };
}

function toHex(bytes: Uint8Array): string {
  let text = '';
  for (const byte of bytes) text += byte.toString(16).padStart(2, '0');
  return text;
}

function fromHex(text: string): Uint8Array {
  assert(text.length % 2 === 0 && /^[0-9a-f]*$/.test(text), 'conf change context must be hex');
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Number.parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/** Encodes a conf change as the type and data of a log entry. */
export function encodeConfChange(change: ConfChange | ConfChangeV2): { type: EntryType; data: Uint8Array } {
  const context =
    change.context === undefined || change.context.length === 0 ? undefined : toHex(change.context);
  if (isConfChangeV2(change)) {
    const body = {
      transition: change.transition,
      changes: change.changes.map((c) => ({ type: c.type, nodeId: c.nodeId })),
      ...(context === undefined ? {} : { context }),
    };
    return { type: 'confChangeV2', data: encoder.encode(JSON.stringify(body)) };
  }
  const body = { type: change.type, nodeId: change.nodeId, ...(context === undefined ? {} : { context }) };
  return { type: 'confChange', data: encoder.encode(JSON.stringify(body)) };
}

function parseSingle(value: unknown): ConfChangeSingle {
  assert(typeof value === 'object' && value !== null, 'conf change must be an object');
  const record = value as Record<string, unknown>;
  const type = record['type'];
  const nodeId = record['nodeId'];
  assert(
    typeof type === 'string' && (changeTypes as readonly string[]).includes(type),
    `bad conf change type ${String(type)}`,
  );
  assert(typeof nodeId === 'number' && Number.isInteger(nodeId) && nodeId >= 0, 'bad conf change nodeId');
  return { type: type as ConfChangeType, nodeId };
}

/**
 * Decodes the data of a conf-change entry. Empty data of a `confChangeV2` entry means "leave the
 * joint configuration" (the leader appends it so when auto-leaving).
 */
export function decodeConfChange(type: EntryType, data: Uint8Array): ConfChange | ConfChangeV2 {
  assert(type !== 'normal', 'decodeConfChange needs a conf-change entry');
  if (data.length === 0) {
    assert(type === 'confChangeV2', 'an empty conf change must be a ConfChangeV2');
    return { transition: 'auto', changes: [] };
  }
  const parsed: unknown = JSON.parse(decoder.decode(data));
  assert(typeof parsed === 'object' && parsed !== null, 'conf change must be an object');
  const record = parsed as Record<string, unknown>;
  const context = typeof record['context'] === 'string' ? fromHex(record['context']) : EMPTY_BYTES;
  const withContext = context.length === 0 ? {} : { context };
  if (type === 'confChange') {
    return { ...parseSingle(parsed), ...withContext };
  }
  const transition = record['transition'];
  assert(
    typeof transition === 'string' && (transitions as readonly string[]).includes(transition),
    'bad conf change transition',
  );
  const changes = record['changes'];
  assert(Array.isArray(changes), 'conf change changes must be an array');
  return {
    transition: transition as ConfChangeTransition,
    changes: changes.map(parseSingle),
    ...withContext,
  };
}

/** A short description for transcripts, e.g. `v1 add 4`, `v2 implicit [add 4, remove 1]`. */
export function describeConfChange(change: ConfChange | ConfChangeV2): string {
  const one = (c: ConfChangeSingle): string => {
    switch (c.type) {
      case 'addNode':
        return `v${c.nodeId}`;
      case 'addLearnerNode':
        return `l${c.nodeId}`;
      case 'removeNode':
        return `r${c.nodeId}`;
    }
  };
  if (!isConfChangeV2(change)) {
    return one(change);
  }
  if (isLeaveJoint(change)) {
    return 'leave-joint';
  }
  const prefix = change.transition === 'auto' ? '' : `${change.transition}:`;
  return prefix + change.changes.map(one).join(' ');
}
