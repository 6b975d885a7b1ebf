import assert from 'node:assert/strict';

/**
 * A sorted set of strings kept in a B+tree, ordered by JavaScript's `<` on strings (UTF-16 code
 * units). The memory engine stores keys as latin1 strings, whose code units are the key bytes, so
 * this order is the unsigned byte order of the keys (LevelDB order).
 *
 * Why a B+tree: inserts and deletes are O(log n) and a range scan walks linked leaves, so a scan
 * never sorts. Scans are pulled in bounded chunks (`keysAfter`), synchronously, so a caller that
 * re-seeks after the last key it received is safe against modifications between chunks.
 */

/** Leaves hold up to `nodeCapacity` keys; inner nodes up to `nodeCapacity` children. */
export const nodeCapacityDefault = 64;
/** Below 4 the split and merge arithmetic cannot keep every node at least half full. */
export const nodeCapacityMin = 4;

interface LeafNode {
  readonly kind: 'leaf';
  keys: string[];
  /** The next leaf in key order, so that scans walk leaves without going back up the tree. */
  next: LeafNode | undefined;
}

/**
 * An inner node: `children[i]` holds keys k with `keys[i - 1] <= k < keys[i]` (a missing bound is
 * open). A separator may be below the smallest key of its right subtree after deletes; the
 * bounds above still hold, which is all that searches need.
 */
interface InnerNode {
  readonly kind: 'inner';
  keys: string[];
  children: TreeNode[];
}

type TreeNode = LeafNode | InnerNode;

interface Split {
  readonly separator: string;
  readonly right: TreeNode;
}

export class OrderedIndex {
  readonly #nodeCapacity: number;
  readonly #leafKeysMin: number;
  readonly #innerChildrenMin: number;
  #root: TreeNode = { kind: 'leaf', keys: [], next: undefined };
  #size = 0;

  constructor(options: { nodeCapacity?: number } = {}) {
    const nodeCapacity = options.nodeCapacity ?? nodeCapacityDefault;
    assert.ok(
      Number.isSafeInteger(nodeCapacity) && nodeCapacity >= nodeCapacityMin,
      `nodeCapacity must be an integer >= ${nodeCapacityMin}`,
    );
    this.#nodeCapacity = nodeCapacity;
    // With these minimums a split of an overfull node gives two nodes at or above the minimum,
    // and a merge of a node one below the minimum with a sibling at the minimum fits in one node.
    this.#leafKeysMin = Math.floor(nodeCapacity / 2);
    this.#innerChildrenMin = Math.ceil(nodeCapacity / 2);
  }

  get size(): number {
    return this.#size;
  }

  has(key: string): boolean {
    const leaf = this.#findLeaf(key);
    const index = lowerBound(leaf.keys, key);
    return leaf.keys[index] === key;
  }

  /** Adds the key; returns false when it was already present. */
  insert(key: string): boolean {
    const sizeBefore = this.#size;
    const split = this.#insertInto(this.#root, key);
    if (split !== undefined) {
      this.#root = { kind: 'inner', keys: [split.separator], children: [this.#root, split.right] };
    }
    return this.#size > sizeBefore;
  }

  /** Removes the key; returns false when it was absent. */
  delete(key: string): boolean {
    const found = this.#deleteFrom(this.#root, key);
    const root = this.#root;
    if (root.kind === 'inner' && root.children.length === 1) {
      const onlyChild = root.children[0];
      assert.ok(onlyChild !== undefined);
      this.#root = onlyChild;
    }
    return found;
  }

  clear(): void {
    this.#root = { kind: 'leaf', keys: [], next: undefined };
    this.#size = 0;
  }

  /**
   * Up to `countMax` keys in ascending order, starting at `from` (included when `fromInclusive`,
   * else the first key after it; the first key when `from` is undefined) and stopping before
   * `end` (no bound when undefined).
   */
  keysFrom(
    from: string | undefined,
    fromInclusive: boolean,
    end: string | undefined,
    countMax: number,
  ): string[] {
    assert.ok(Number.isSafeInteger(countMax) && countMax >= 0);
    const result: string[] = [];
    if (countMax === 0) return result;
    let leaf: LeafNode | undefined;
    let index: number;
    if (from === undefined) {
      leaf = this.#firstLeaf();
      index = 0;
    } else {
      leaf = this.#findLeaf(from);
      index = fromInclusive ? lowerBound(leaf.keys, from) : upperBound(leaf.keys, from);
    }
    while (leaf !== undefined) {
      const keys = leaf.keys;
      for (; index < keys.length; index += 1) {
        const key = keys[index] as string;
        if (end !== undefined && key >= end) return result;
        result.push(key);
        if (result.length === countMax) return result;
      }
      leaf = leaf.next;
      index = 0;
    }
    return result;
  }

  /** Every key in order; for tests and small sets. */
  keys(): string[] {
    return this.keysFrom(undefined, true, undefined, Math.max(this.#size, 1));
  }

  /**
   * Checks every structural invariant of the tree and throws when one is broken. It walks the
   * whole tree, so it is for tests.
   */
  assertInvariants(): void {
    const leaves: LeafNode[] = [];
    const leafDepths = new Set<number>();
    let count = 0;
    const visit = (
      node: TreeNode,
      lower: string | undefined,
      upper: string | undefined,
      depth: number,
    ): void => {
      const isRoot = node === this.#root;
      for (let index = 1; index < node.keys.length; index += 1) {
        assert.ok(
          (node.keys[index - 1] as string) < (node.keys[index] as string),
          'keys are strictly ascending',
        );
      }
      for (const key of node.keys) {
        assert.ok(lower === undefined || key >= lower, 'key is at or above its lower bound');
        assert.ok(upper === undefined || key < upper, 'key is below its upper bound');
      }
      if (node.kind === 'leaf') {
        assert.ok(node.keys.length <= this.#nodeCapacity, 'leaf is not overfull');
        assert.ok(isRoot || node.keys.length >= this.#leafKeysMin, 'leaf is at least half full');
        leaves.push(node);
        leafDepths.add(depth);
        count += node.keys.length;
        return;
      }
      assert.equal(node.children.length, node.keys.length + 1, 'inner node has one child more than keys');
      assert.ok(node.children.length <= this.#nodeCapacity, 'inner node is not overfull');
      assert.ok(
        isRoot ? node.children.length >= 2 : node.children.length >= this.#innerChildrenMin,
        'inner node is at least half full',
      );
      node.children.forEach((child, index) => {
        visit(child, index === 0 ? lower : node.keys[index - 1], node.keys[index] ?? upper, depth + 1);
      });
    };
    visit(this.#root, undefined, undefined, 0);
    assert.equal(leafDepths.size, 1, 'every leaf is at the same depth');
    assert.equal(count, this.#size, 'size counts every key');
    leaves.forEach((leaf, index) => {
      assert.equal(leaf.next, leaves[index + 1], 'leaves are linked in key order');
    });
  }

  #firstLeaf(): LeafNode {
    let node = this.#root;
    while (node.kind === 'inner') node = node.children[0] as TreeNode;
    return node;
  }

  #findLeaf(key: string): LeafNode {
    let node = this.#root;
    while (node.kind === 'inner') node = node.children[upperBound(node.keys, key)] as TreeNode;
    return node;
  }

  #insertInto(node: TreeNode, key: string): Split | undefined {
    if (node.kind === 'leaf') {
      const index = lowerBound(node.keys, key);
      if (node.keys[index] === key) return undefined;
      node.keys.splice(index, 0, key);
      this.#size += 1;
      if (node.keys.length <= this.#nodeCapacity) return undefined;
      const right: LeafNode = {
        kind: 'leaf',
        keys: node.keys.splice(node.keys.length >> 1),
        next: node.next,
      };
      node.next = right;
      return { separator: right.keys[0] as string, right };
    }
    const childIndex = upperBound(node.keys, key);
    const split = this.#insertInto(node.children[childIndex] as TreeNode, key);
    if (split === undefined) return undefined;
    node.keys.splice(childIndex, 0, split.separator);
    node.children.splice(childIndex + 1, 0, split.right);
    if (node.children.length <= this.#nodeCapacity) return undefined;
    // The middle separator moves up; the keys on each side stay with their children.
    const middle = node.keys.length >> 1;
    const separator = node.keys[middle] as string;
    const right: InnerNode = {
      kind: 'inner',
      keys: node.keys.splice(middle + 1),
      children: node.children.splice(middle + 1),
    };
    node.keys.pop();
    return { separator, right };
  }

  #deleteFrom(node: TreeNode, key: string): boolean {
    if (node.kind === 'leaf') {
      const index = lowerBound(node.keys, key);
      if (node.keys[index] !== key) return false;
      node.keys.splice(index, 1);
      this.#size -= 1;
      return true;
    }
    const childIndex = upperBound(node.keys, key);
    const child = node.children[childIndex] as TreeNode;
    if (!this.#deleteFrom(child, key)) return false;
    const underfull =
      child.kind === 'leaf'
        ? child.keys.length < this.#leafKeysMin
        : child.children.length < this.#innerChildrenMin;
    if (underfull) this.#rebalance(node, childIndex);
    return true;
  }

  /** Brings `parent.children[index]`, one below its minimum, back: borrow from a sibling, else merge. */
  #rebalance(parent: InnerNode, index: number): void {
    const child = parent.children[index] as TreeNode;
    const left = parent.children[index - 1];
    const right = parent.children[index + 1];
    assert.ok(left !== undefined || right !== undefined, 'a non-root node has a sibling');
    if (child.kind === 'leaf') {
      const leftLeaf = left as LeafNode | undefined;
      const rightLeaf = right as LeafNode | undefined;
      if (leftLeaf !== undefined && leftLeaf.keys.length > this.#leafKeysMin) {
        child.keys.unshift(leftLeaf.keys.pop() as string);
        parent.keys[index - 1] = child.keys[0] as string;
      } else if (rightLeaf !== undefined && rightLeaf.keys.length > this.#leafKeysMin) {
        child.keys.push(rightLeaf.keys.shift() as string);
        parent.keys[index] = rightLeaf.keys[0] as string;
      } else if (leftLeaf !== undefined) {
        leftLeaf.keys.push(...child.keys);
        leftLeaf.next = child.next;
        parent.keys.splice(index - 1, 1);
        parent.children.splice(index, 1);
      } else {
        assert.ok(rightLeaf !== undefined);
        child.keys.push(...rightLeaf.keys);
        child.next = rightLeaf.next;
        parent.keys.splice(index, 1);
        parent.children.splice(index + 1, 1);
      }
      return;
    }
    const leftInner = left as InnerNode | undefined;
    const rightInner = right as InnerNode | undefined;
    if (leftInner !== undefined && leftInner.children.length > this.#innerChildrenMin) {
      // Rotate right through the parent: the parent's separator comes down, the left's last key goes up.
      child.keys.unshift(parent.keys[index - 1] as string);
      child.children.unshift(leftInner.children.pop() as TreeNode);
      parent.keys[index - 1] = leftInner.keys.pop() as string;
    } else if (rightInner !== undefined && rightInner.children.length > this.#innerChildrenMin) {
      child.keys.push(parent.keys[index] as string);
      child.children.push(rightInner.children.shift() as TreeNode);
      parent.keys[index] = rightInner.keys.shift() as string;
    } else if (leftInner !== undefined) {
      leftInner.keys.push(parent.keys[index - 1] as string, ...child.keys);
      leftInner.children.push(...child.children);
      parent.keys.splice(index - 1, 1);
      parent.children.splice(index, 1);
    } else {
      assert.ok(rightInner !== undefined);
      child.keys.push(parent.keys[index] as string, ...rightInner.keys);
      child.children.push(...rightInner.children);
      parent.keys.splice(index, 1);
      parent.children.splice(index + 1, 1);
    }
  }
}

/** The first index whose key is >= `key` (keys.length when none). */
function lowerBound(keys: readonly string[], key: string): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((keys[middle] as string) < key) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** The first index whose key is > `key` (keys.length when none). */
function upperBound(keys: readonly string[], key: string): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((keys[middle] as string) <= key) low = middle + 1;
    else high = middle;
  }
  return low;
}
