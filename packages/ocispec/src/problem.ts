/** One thing wrong with a document: where (JSON pointer), what, and how to fix it when we know. */
export interface Problem {
  /** RFC 6901 JSON pointer into the document, "" for the whole document. */
  pointer: string;
  message: string;
  hint?: string;
}

export function formatProblem(p: Problem): string {
  const where = p.pointer === "" ? "(document)" : p.pointer;
  return p.hint ? `${where}: ${p.message} (${p.hint})` : `${where}: ${p.message}`;
}

/** Escape one reference token for a JSON pointer (RFC 6901). */
export function pointerToken(token: string | number): string {
  return String(token).replace(/~/g, "~0").replace(/\//g, "~1");
}
