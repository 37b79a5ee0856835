// "Did you mean" suggestions for misspelt names and enum values.

/** Levenshtein distance, for "did you mean" hints on enum values and names. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

/** The closest candidate to `value`, when it is close enough to be a likely typo. */
export function closest(value: string, candidates: readonly string[]): string | undefined {
  const lower = value.toLowerCase();
  if (lower.length >= 3) {
    const prefixed = candidates.filter((c) => c.toLowerCase().startsWith(lower));
    if (prefixed.length === 1) return prefixed[0];
  }
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = c.toLowerCase() === lower ? 0 : editDistance(lower, c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(value.length / 3)) ? best : undefined;
}

/**
 * Whether `key` reads as a misspelling of `name`: another case, a letter or two too many or too
 * few, or two neighbours swapped. Stricter than an edit distance, so that a valid sibling
 * ("gid" beside a missing "uid") is never taken for a typo.
 */
export function likelyTypo(name: string, key: string): boolean {
  const a = name.toLowerCase();
  const b = key.toLowerCase();
  if (a === b) return true;
  const sub = (short: string, long: string) => {
    let i = 0;
    for (const c of long) if (c === short[i]) i++;
    return i === short.length;
  };
  if (Math.abs(a.length - b.length) <= 2 && a.length !== b.length && (a.length < b.length ? sub(a, b) : sub(b, a))) return true;
  if (a.length === b.length) {
    const diff = [...a].map((c, i) => (c === b[i] ? -1 : i)).filter((i) => i >= 0);
    return diff.length === 2 && diff[1] === diff[0]! + 1 && a[diff[0]!] === b[diff[1]!] && a[diff[1]!] === b[diff[0]!];
  }
  return false;
}

/** A key of `obj` that reads as a misspelling of the missing property `name`. */
export function misspeltKey(obj: unknown, name: string): string | undefined {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) return undefined;
  return Object.keys(obj).find((k) => k !== name && likelyTypo(name, k));
}
