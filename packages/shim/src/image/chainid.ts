// Chain ids (OCI image-spec, config.md "Layer ChainID"): a layer's content on its own is named by
// its DiffID, but a snapshot is the layer *applied on top of* every layer below it, so it is named
// by the whole stack: ChainID(L0) = DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
import { parseDigest } from "@tsrun/ocispec";
import { sha256Digest } from "./store.ts";

/** The chain id of each prefix of `diffIds` (bottom layer first): result[i] names layers 0..i. */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const [i, diffId] of diffIds.entries()) {
    parseDigest(diffId);
    out.push(i === 0 ? diffId : sha256Digest(`${out[i - 1]} ${diffId}`));
  }
  return out;
}

/** The chain id of the whole stack (the top snapshot), or undefined for no layers. */
export function chainId(diffIds: readonly string[]): string | undefined {
  return chainIds(diffIds).at(-1);
}
