// The v1 devices controller: the container's device allow-list, rule by rule, in order
// (devices.deny "a" empties the list, devices.allow "a" allows everything).
import type { LinuxDeviceCgroup } from "@tsrun/ocispec/core";
import { writeText } from "../fs.ts";

/** The devices every container may use, after the config's own rules (as runc allows them). */
export const DEFAULT_ALLOWED: LinuxDeviceCgroup[] = [
  { allow: true, type: "c", access: "m" }, // mknod of any device; using it needs its own rule
  { allow: true, type: "b", access: "m" },
  { allow: true, type: "c", major: 1, minor: 3, access: "rwm" }, // null
  { allow: true, type: "c", major: 1, minor: 5, access: "rwm" }, // zero
  { allow: true, type: "c", major: 1, minor: 7, access: "rwm" }, // full
  { allow: true, type: "c", major: 1, minor: 8, access: "rwm" }, // random
  { allow: true, type: "c", major: 1, minor: 9, access: "rwm" }, // urandom
  { allow: true, type: "c", major: 5, minor: 0, access: "rwm" }, // tty
  { allow: true, type: "c", major: 5, minor: 2, access: "rwm" }, // ptmx
  { allow: true, type: "c", major: 136, access: "rwm" }, // pts/*
  { allow: true, type: "c", major: 10, minor: 200, access: "rwm" }, // net/tun
];

/** The line devices.allow / devices.deny take: "c 1:3 rwm", "a *:* rwm". */
export function ruleLine(r: LinuxDeviceCgroup): string {
  const num = (n: number | undefined) => (n === undefined || n < 0 ? "*" : String(n));
  return `${r.type ?? "a"} ${num(r.major)}:${num(r.minor)} ${r.access ?? "rwm"}`;
}

export function applyDevicesV1(dir: string, rules: readonly LinuxDeviceCgroup[]): void {
  for (const r of rules) writeText(`${dir}/${r.allow ? "devices.allow" : "devices.deny"}`, ruleLine(r));
}
