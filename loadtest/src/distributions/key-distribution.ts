/** Chooses the next key number of an operation; every distribution draws from an injected seeded generator. */
export interface KeyDistribution {
  readonly name: string;
  nextKeyNumber(): number;
}
