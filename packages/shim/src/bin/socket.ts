// Whether a shim daemon answers on a unix socket: `start` asks before it hands out a group's
// socket, `delete` before it removes a dead one. Kept apart so that neither loads the other.
import { existsSync } from "node:fs";

export async function connectable(path: string): Promise<boolean> {
  if (!existsSync(path)) return false;
  try {
    const s = await Bun.connect({ unix: path, socket: { data() {} } });
    s.end();
    return true;
  } catch {
    return false;
  }
}
