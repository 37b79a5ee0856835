// The shim's executable name: containerd turns runtime io.containerd.tsrun.v2 into it. The tsrun
// binary runs as the shim when exec'd under this name (packages/shim/src/cli/bin.ts).
export const SHIM_NAME = "containerd-shim-tsrun-v2";
export const SHIM_VERSION = `${SHIM_NAME} 0.1.0`;
