import { defineCommand } from "../def.ts";
import { features } from "../../features.ts";

export default defineCommand({
  summary: "show the enabled features",
  description:
    "Prints the OCI runtime-spec features document of this tsrun: the spec versions, hooks, mount options, namespaces and capabilities it recognises, and which cgroup, seccomp and LSM features it implements. Fields that are not implemented yet say so.",
  examples: ["tsrun features"],
  flags: {},
  args: [],
  run(ctx) {
    ctx.stdout(JSON.stringify(features(), null, 4) + "\n");
    return 0;
  },
});
