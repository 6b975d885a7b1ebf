import { describe, expect, it } from 'vitest';
import { parseMountpointsUnder } from '../src/mounts.js';

const mountinfo = [
  '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
  '90 22 0:50 / /tmp/run/cluster/g1/g1-r1 rw,nosuid,nodev,relatime shared:60 - fuse impulse-powerfs rw,user_id=0',
  '91 22 0:51 / /tmp/run/cluster/g1/g1\\040r2 rw shared:61 - fuse impulse-powerfs rw',
  '92 22 0:52 / /tmp/run/cluster-other rw shared:62 - tmpfs tmpfs rw',
  '',
].join('\n');

describe('mountpointsUnder', () => {
  it("finds the mounts at or under a folder, unescaping the kernel's octal escapes", () => {
    expect(parseMountpointsUnder(mountinfo, '/tmp/run/cluster')).toEqual([
      '/tmp/run/cluster/g1/g1-r1',
      '/tmp/run/cluster/g1/g1 r2',
    ]);
    expect(parseMountpointsUnder(mountinfo, '/tmp/run/cluster/g1/g1-r1')).toEqual([
      '/tmp/run/cluster/g1/g1-r1',
    ]);
    // A sibling whose name starts the same is not under it.
    expect(parseMountpointsUnder(mountinfo, '/tmp/run/cluster/g2')).toEqual([]);
    expect(parseMountpointsUnder(mountinfo, '/')).toHaveLength(4);
  });
});
