/**
 * Human-readable one-line descriptions of the core's data, in the style of etcd's
 * DescribeMessage. Used by the golden transcripts, the simulator and debug logs.
 */
import { decodeConfChange, describeConfChange } from './confchange-codec.js';
import type { ConfState, Entry, HardState, Message, Ready, Snapshot, SoftState } from './types.js';

const decoder = new TextDecoder();

function describeBytes(data: Uint8Array): string {
  let printable = true;
  for (const byte of data) {
    if (byte < 0x20 || byte > 0x7e) {
      printable = false;
      break;
    }
  }
  if (printable) {
    return JSON.stringify(decoder.decode(data));
  }
  let hex = '0x';
  for (const byte of data) hex += byte.toString(16).padStart(2, '0');
  return hex;
}

const entryTypeNames = {
  normal: 'EntryNormal',
  confChange: 'EntryConfChange',
  confChangeV2: 'EntryConfChangeV2',
};

/** E.g. `1/5 EntryNormal "put x"` (term/index type data). */
export function describeEntry(entry: Entry): string {
  let text = `${entry.term}/${entry.index} ${entryTypeNames[entry.type]}`;
  if (entry.type === 'normal') {
    if (entry.data.length > 0) text += ` ${describeBytes(entry.data)}`;
  } else {
    text += ` ${describeConfChange(decodeConfChange(entry.type, entry.data))}`;
  }
  return text;
}

export function describeEntries(entries: readonly Entry[]): string {
  return entries.map(describeEntry).join('\n');
}

export function describeHardState(state: HardState): string {
  return `Term:${state.term} Vote:${state.vote} Commit:${state.commit}`;
}

const roleNames = {
  follower: 'StateFollower',
  candidate: 'StateCandidate',
  precandidate: 'StatePreCandidate',
  leader: 'StateLeader',
};

export function describeSoftState(state: SoftState): string {
  return `Lead:${state.leaderId} State:${roleNames[state.role]}`;
}

export function describeConfState(state: ConfState): string {
  let text = `Voters:[${state.voters.join(' ')}] VotersOutgoing:[${state.votersOutgoing.join(' ')}]`;
  text += ` Learners:[${state.learners.join(' ')}] LearnersNext:[${state.learnersNext.join(' ')}]`;
  text += ` AutoLeave:${state.autoLeave}`;
  return text;
}

export function describeSnapshot(snapshot: Snapshot): string {
  const { index, term, confState } = snapshot.metadata;
  return `Index:${index} Term:${term} ConfState:${describeConfState(confState)}`;
}

/** E.g. `1->2 MsgApp Term:1 Log:1/10 Commit:10 Entries:[1/11 EntryNormal "x"]`. */
export function describeMessage(message: Message): string {
  let text = `${message.from}->${message.to} ${message.type} Term:${message.term} Log:${message.logTerm}/${message.index}`;
  if (message.reject) {
    text += ` Rejected (Hint: ${message.rejectHint})`;
  }
  if (message.commit !== 0) {
    text += ` Commit:${message.commit}`;
  }
  if (message.entries.length > 0) {
    text += ` Entries:[${message.entries.map(describeEntry).join(', ')}]`;
  }
  if (message.context.length > 0) {
    text += ` Context:${describeBytes(message.context)}`;
  }
  if (message.snapshot !== undefined) {
    text += ` Snapshot: ${describeSnapshot(message.snapshot)}`;
  }
  return text;
}

/** A multi-line description of a Ready, listing only its non-empty parts. */
export function describeReady(ready: Ready): string {
  const lines: string[] = [`Ready MustSync=${ready.mustSync}:`];
  if (ready.softState !== undefined) lines.push(describeSoftState(ready.softState));
  if (ready.hardState !== undefined) lines.push(`HardState ${describeHardState(ready.hardState)}`);
  if (ready.readStates.length > 0) {
    lines.push('ReadStates:');
    for (const rs of ready.readStates)
      lines.push(`Index:${rs.index} Context:${describeBytes(rs.requestContext)}`);
  }
  if (ready.entries.length > 0) {
    lines.push('Entries:');
    for (const entry of ready.entries) lines.push(describeEntry(entry));
  }
  if (ready.snapshot !== undefined) lines.push(`Snapshot ${describeSnapshot(ready.snapshot)}`);
  if (ready.committedEntries.length > 0) {
    lines.push('CommittedEntries:');
    for (const entry of ready.committedEntries) lines.push(describeEntry(entry));
  }
  if (ready.messages.length > 0) {
    lines.push('Messages:');
    for (const message of ready.messages) lines.push(describeMessage(message));
  }
  return lines.join('\n');
}
