// Platforms, in the Go spelling images are labelled with: this host's, parsing and printing
// "os/arch[/variant]", and how well a machine runs an image built for another variant. Shared
// by pull (choosing from a registry's index) and by resolve (choosing from the local store).
import { endianness } from "node:os";

export interface PlatformSpec {
  os: string;
  architecture: string;
  variant?: string;
}

const ARCH_NAMES: Record<string, { architecture: string; variant?: string }> = {
  x86_64: { architecture: "amd64" },
  "x86-64": { architecture: "amd64" },
  x64: { architecture: "amd64" },
  aarch64: { architecture: "arm64" },
  armhf: { architecture: "arm", variant: "v7" },
  armel: { architecture: "arm", variant: "v6" },
  i386: { architecture: "386" },
  i686: { architecture: "386" },
  ia32: { architecture: "386" },
  ppc64el: { architecture: "ppc64le" },
};

/** A platform in the Go spelling registries use, with the variant every tool assumes when none is written. */
function normalizePlatform(p: PlatformSpec): Required<PlatformSpec> {
  const os = p.os.toLowerCase();
  let architecture = p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase() ?? "";
  const alias = ARCH_NAMES[architecture];
  if (alias) {
    architecture = alias.architecture;
    if (!variant && alias.variant) variant = alias.variant;
  }
  if (/^[0-9]/.test(variant)) variant = `v${variant}`;
  if (architecture === "arm64" && (variant === "" || variant === "8")) variant = "v8";
  if (architecture === "arm" && variant === "") variant = "v7";
  if (architecture === "amd64" && variant === "") variant = "v1";
  return { os, architecture, variant };
}

/** "linux/arm64/v8", "linux/amd64", or just an architecture ("arm64": linux assumed). */
export function parsePlatform(s: string): PlatformSpec {
  const parts = s.trim().split("/");
  if (parts.some((x) => x === "") || parts.length > 3)
    throw new Error(`invalid platform ${JSON.stringify(s)}: write os/architecture[/variant], e.g. "linux/arm64" or "linux/arm/v7"`);
  if (parts.length === 1) return { os: "linux", architecture: parts[0]!.toLowerCase() };
  const p: PlatformSpec = { os: parts[0]!.toLowerCase(), architecture: parts[1]!.toLowerCase() };
  if (parts[2] !== undefined) p.variant = parts[2].toLowerCase();
  return p;
}

export function formatPlatform(p: { os?: string; architecture?: string; variant?: string | null }): string {
  return `${p.os ?? "?"}/${p.architecture ?? "?"}${p.variant ? `/${p.variant}` : ""}`;
}

/** The platform of this machine, as images name it. */
export function hostPlatform(): PlatformSpec {
  const armVersion = (process.config.variables as Record<string, unknown>).arm_version;
  const node: Record<string, PlatformSpec> = {
    x64: { os: "linux", architecture: "amd64" },
    arm64: { os: "linux", architecture: "arm64", variant: "v8" },
    arm: { os: "linux", architecture: "arm", variant: typeof armVersion === "string" && /^[5-8]$/.test(armVersion) ? `v${armVersion}` : "v7" },
    ia32: { os: "linux", architecture: "386" },
    // Node says ppc64 for both byte orders.
    ppc64: { os: "linux", architecture: endianness() === "LE" ? "ppc64le" : "ppc64" },
    s390x: { os: "linux", architecture: "s390x" },
    riscv64: { os: "linux", architecture: "riscv64" },
    loong64: { os: "linux", architecture: "loong64" },
    mips: { os: "linux", architecture: "mips" },
    mipsel: { os: "linux", architecture: "mipsle" },
  };
  return node[process.arch] ?? { os: "linux", architecture: process.arch };
}

/**
 * How well a machine of platform `want` runs an image built for `have`: 0 is a perfect fit,
 * larger is a worse but still working fit, undefined means it does not run. CPU variants are
 * backward compatible (an armv7 CPU runs armv6 code, an x86-64-v3 CPU runs v1 code), and arm64
 * CPUs run 32-bit arm code, which is only chosen when nothing native exists.
 */
export function platformRank(want: PlatformSpec, have: PlatformSpec): number | undefined {
  const w = normalizePlatform(want);
  const h = normalizePlatform(have);
  if (w.os !== h.os) return undefined;
  const level = (v: string) => {
    const m = /^v([0-9]+)(?:\.([0-9]+))?$/.exec(v);
    return m ? Number(m[1]) + Number(m[2] ?? 0) / 100 : undefined;
  };
  if (w.architecture === h.architecture) {
    if (w.variant === h.variant) return 0;
    const wl = level(w.variant);
    const hl = level(h.variant);
    if (wl === undefined || hl === undefined || hl > wl) return undefined;
    return Math.round((wl - hl) * 100);
  }
  if (w.architecture === "arm64" && h.architecture === "arm") {
    const hl = level(h.variant);
    return hl === undefined || hl > 8 ? undefined : 10_000 + Math.round((8 - hl) * 100);
  }
  return undefined;
}

/** Whether a machine of platform `want` runs an image labelled `have` (see platformRank). */
export function platformMatches(want: PlatformSpec, have: { os?: string; architecture?: string; variant?: string | null } | undefined): boolean {
  if (!have || typeof have.os !== "string" || typeof have.architecture !== "string") return false;
  return platformRank(want, { os: have.os, architecture: have.architecture, ...(have.variant ? { variant: have.variant } : {}) }) !== undefined;
}
