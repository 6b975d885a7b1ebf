/**
 * The known name nearest to a misspelt one, for messages such as "unknown field raftID (did you
 * mean raftId?)". Distances are Levenshtein's (insertions, deletions and substitutions each cost
 * one) between the lower-cased names, so that a difference of case alone is the nearest of all.
 */

/** Names longer than this are not compared: a field name that long is no misspelling of ours. */
const comparedNameLengthMax = 256;

/** The Levenshtein distance between two strings, in O(a × b) time and O(b) memory. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let row = 1; row <= a.length; row++) {
    const current = [row];
    for (let column = 1; column <= b.length; column++) {
      const substitution = (previous[column - 1] as number) + (a[row - 1] === b[column - 1] ? 0 : 1);
      const deletion = (previous[column] as number) + 1;
      const insertion = (current[column - 1] as number) + 1;
      current.push(Math.min(substitution, deletion, insertion));
    }
    previous = current;
  }
  return previous[b.length] as number;
}

/**
 * The name of `known` nearest to `name` (the first of equals, in the order given); undefined when
 * `known` is empty or `name` is too long to be a misspelling of any of them.
 */
export function nearestName(name: string, known: readonly string[]): string | undefined {
  if (name.length > comparedNameLengthMax) return undefined;
  let nearest: string | undefined;
  let nearestDistance = Infinity;
  for (const candidate of known) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance < nearestDistance) {
      nearest = candidate;
      nearestDistance = distance;
    }
  }
  return nearest;
}
