export * from './command.js';
export * from './consistency-hash.js';
export * from './keyspace.js';
export * from './snapshot-codec.js';
export * from './state-machine.js';
export * from './sealed-record.js';
export * from './slot-index.js';
export * from './storage-fault.js';
