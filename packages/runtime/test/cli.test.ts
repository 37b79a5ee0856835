import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { schemaProblems } from "@tsrun/ocispec";
import { hasCommand, tempDir, tsrun, TSRUN } from "./helpers.ts";

const noStackTrace = (text: string) => expect(text).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);

test("the compiled binary exists", () => {
  expect(existsSync(TSRUN)).toBe(true);
});

test("a .env or bunfig.toml in the working directory (a bundle, say) changes nothing", () => {
  const dir = tempDir();
  writeFileSync(join(dir, ".env"), "TSRUN_TRACE=1\n");
  writeFileSync(join(dir, "bunfig.toml"), 'preload = ["./evil.ts"]\n');
  writeFileSync(join(dir, "evil.ts"), 'console.log("evil");\n');
  const r = tsrun(["--version"], { cwd: dir });
  expect(r.code).toBe(0);
  expect(r.stderr).toBe("");
  expect(r.stdout).not.toContain("evil");
});

describe("--version", () => {
  test("prints runc's layout with the spec version", () => {
    for (const flag of ["--version", "-v"]) {
      const r = tsrun([flag]);
      expect(r.code).toBe(0);
      const lines = r.stdout.trimEnd().split("\n");
      expect(lines[0]).toMatch(/^tsrun version \d+\.\d+\.\d+/);
      expect(lines[1]).toMatch(/^commit: \S+/);
      expect(lines[2]).toBe("spec: 1.3.0");
    }
  });
});

describe("spec", () => {
  const dir = tempDir();

  test("writes a config.json that validates, and refuses to overwrite it", () => {
    const b = join(dir, "plain");
    mkdirSync(join(b, "rootfs"), { recursive: true });
    expect(tsrun(["spec", "--bundle", b]).code).toBe(0);
    const config = JSON.parse(readFileSync(join(b, "config.json"), "utf8"));
    expect(config.ociVersion).toBe("1.3.0");
    expect(schemaProblems("config", config)).toEqual([]);
    const v = tsrun(["validate", "--bundle", b]);
    expect(v.stdout).toContain("valid");
    expect(v.code).toBe(0);
    const again = tsrun(["spec", "-b", b]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("exists. Remove it first");
  });

  test("works in the current directory and with runc's single-dash flags", () => {
    const b = join(dir, "cwd");
    mkdirSync(b);
    expect(tsrun(["spec"], { cwd: b }).code).toBe(0);
    expect(existsSync(join(b, "config.json"))).toBe(true);
    const c = join(dir, "dash");
    mkdirSync(c);
    expect(tsrun(["spec", "-bundle", c]).code).toBe(0);
    expect(existsSync(join(c, "config.json"))).toBe(true);
  });

  test("--rootless maps the caller into a user namespace", () => {
    const b = join(dir, "rootless");
    mkdirSync(b);
    expect(tsrun(["spec", "--rootless", "--bundle", b]).code).toBe(0);
    const c = JSON.parse(readFileSync(join(b, "config.json"), "utf8"));
    expect(c.linux.namespaces.map((n: { type: string }) => n.type)).toContain("user");
    expect(c.linux.namespaces.map((n: { type: string }) => n.type)).not.toContain("network");
    expect(c.linux.uidMappings).toEqual([{ containerID: 0, hostID: process.getuid!(), size: 1 }]);
    expect(c.linux.resources).toBeUndefined();
    expect(schemaProblems("config", c)).toEqual([]);
  });

  test("a missing bundle directory is a clear error", () => {
    const r = tsrun(["spec", "--bundle", join(dir, "nope")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("ENOENT");
    noStackTrace(r.stderr);
  });

  test("has the same structure as `runc spec` (scripts/setup.sh installs runc)", () => {
    expect(hasCommand("runc")).toBe(true);
    for (const rootless of [false, true]) {
      const ours = join(dir, `ours-${rootless}`);
      const theirs = join(dir, `runc-${rootless}`);
      mkdirSync(ours);
      mkdirSync(theirs);
      const flag = rootless ? ["--rootless"] : [];
      expect(tsrun(["spec", ...flag, "--bundle", ours]).code).toBe(0);
      expect(Bun.spawnSync(["runc", "spec", ...flag, "--bundle", theirs]).success).toBe(true);
      const a = JSON.parse(readFileSync(join(ours, "config.json"), "utf8"));
      const b = JSON.parse(readFileSync(join(theirs, "config.json"), "utf8"));
      // Only the spec version and the hostname are ours to choose.
      for (const c of [a, b]) {
        delete c.ociVersion;
        delete c.hostname;
      }
      expect(a).toEqual(b);
      expect(statSync(join(ours, "config.json")).isFile()).toBe(true);
    }
  });
});

describe("validate", () => {
  const dir = tempDir();
  const bundle = (name: string, config: string | object, rootfs = true) => {
    const b = join(dir, name);
    mkdirSync(b);
    if (rootfs) mkdirSync(join(b, "rootfs"));
    writeFileSync(join(b, "config.json"), typeof config === "string" ? config : JSON.stringify(config, null, 2));
    return b;
  };
  const base = () => {
    const b = join(dir, "base");
    if (!existsSync(b)) {
      mkdirSync(b);
      tsrun(["spec", "-b", b]);
    }
    return JSON.parse(readFileSync(join(b, "config.json"), "utf8"));
  };

  test("invalid JSON: exit 1 with line and column", () => {
    const b = bundle("badjson", '{\n  "ociVersion": "1.3.0",\n  "process": {,\n}\n');
    const r = tsrun(["validate", "--bundle", b]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/config\.json:3:\d+: invalid JSON/);
    noStackTrace(r.stderr);
  });

  test("empty file", () => {
    const r = tsrun(["validate", "--bundle", bundle("empty", "")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("invalid JSON");
  });

  test("every problem is listed with its pointer", () => {
    const c = base();
    c.process.cwd = "relative/dir";
    c.process.user.uid = "root";
    c.linux.namespaces[1].type = "net";
    delete c.mounts[0].destination;
    c.process.capabilities.bounding.push("CAP_NET_ADMN");
    const r = tsrun(["validate", "--bundle", bundle("many", c)]);
    expect(r.code).toBe(1);
    for (const p of ["/process/cwd", "/process/user/uid", "/linux/namespaces/1/type", "/mounts/0/destination", "/process/capabilities/bounding/3"]) expect(r.stdout).toContain(p);
    expect(r.stdout).toContain('did you mean "network"?');
    expect(r.stdout).toContain('did you mean "CAP_NET_ADMIN"?');
    expect(r.stdout).toMatch(/^.*config\.json: 5 problems$/m);
    noStackTrace(r.stdout + r.stderr);
  });

  test("a missing rootfs is reported at /root/path", () => {
    const r = tsrun(["validate", "--bundle", bundle("norootfs", base(), false)]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("/root/path");
    expect(r.stdout).toContain("ENOENT");
  });

  test("a missing config.json is a clear error", () => {
    const b = join(dir, "noconfig");
    mkdirSync(b);
    const r = tsrun(["validate", "--bundle", b]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("ENOENT");
  });
});

describe("features", () => {
  test("prints a features document that our schema accepts", () => {
    const r = tsrun(["features"]);
    expect(r.code).toBe(0);
    const f = JSON.parse(r.stdout);
    expect(schemaProblems("features", f)).toEqual([]);
    expect(f.ociVersionMax).toBe("1.3.0");
    expect(f.linux.namespaces).toContain("time");
    expect(f.linux.capabilities).toContain("CAP_CHECKPOINT_RESTORE");
    expect(f.mountOptions).toContain("rro");
  });
});

describe("command line", () => {
  const dir = tempDir();

  test("runc's global flags come before the command", () => {
    const b = join(dir, "g");
    mkdirSync(b);
    const log = join(dir, "g.log");
    const r = tsrun(["--root", join(dir, "state"), "--log", log, "--log-format", "json", "--debug", "--systemd-cgroup", "--rootless", "false", "spec", "--bundle", b]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  test("with --log-format json a failure is one JSON error line in the log", () => {
    const b = join(dir, "j");
    mkdirSync(b);
    writeFileSync(join(b, "config.json"), "{}");
    const log = join(dir, "j.log");
    const r = tsrun(["--log", log, "--log-format=json", "spec", "--bundle", b]);
    expect(r.code).toBe(1);
    const lines = readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.at(-1)).toMatchObject({ level: "error", msg: expect.stringContaining("exists") });
    expect(lines.at(-1).time).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  test("unknown commands, flags and log formats fail with a message", () => {
    for (const args of [["bogus"], ["spec", "--bogus"], ["--log-format", "xml", "spec"], ["--nope", "spec"], ["features", "--bogus"], ["spec", "extra-arg"]]) {
      const r = tsrun(args);
      expect(r.code).not.toBe(0);
      expect(r.stderr.length).toBeGreaterThan(0);
      noStackTrace(r.stderr);
    }
    expect(tsrun(["specc"]).stderr).toContain('did you mean "spec"?');
  });

  test("help lists the commands and each command's flags", () => {
    const root = tsrun(["--help"]);
    expect(root.code).toBe(0);
    for (const c of ["spec", "validate", "features"]) expect(root.stdout).toContain(c);
    const spec = tsrun(["spec", "--help"]);
    expect(spec.code).toBe(0);
    expect(spec.stdout).toContain("--bundle");
    expect(spec.stdout).toContain("--rootless");
    expect(tsrun(["help", "validate"]).stdout).toContain("--bundle");
  });
});
