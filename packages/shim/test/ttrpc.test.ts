// ttrpc: the framer (pure) and a server and client over real unix sockets. No root needed.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TtrpcClient } from "../src/ttrpc/client.ts";
import { encodeFrame, FrameDecoder, FrameTooLarge, FrameType, HEADER_LENGTH, MAX_DATA_LENGTH, type Decoded, type Frame } from "../src/ttrpc/frame.ts";
import { requestCodec, responseCodec } from "../src/ttrpc/messages.ts";
import { codec, parseProtos } from "../src/ttrpc/codec.ts";
import requestProto from "../proto/containerd/ttrpc/request.proto" with { type: "text" };
import statusProto from "../proto/containerd/rpc/status.proto" with { type: "text" };
import { TtrpcServer } from "../src/ttrpc/server.ts";
import { Code, TtrpcError } from "../src/ttrpc/status.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** A deterministic PRNG so that a failing fuzz case can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 0x100000000;
  };
}

function frames(decoded: Decoded[]): Frame[] {
  return decoded.map((d) => {
    if (d.kind !== "frame") throw new Error(`unexpected ${d.kind}`);
    return d.frame;
  });
}

describe("framer", () => {
  test("header layout is big-endian length, stream id, type, flags", () => {
    const out = encodeFrame({ streamId: 0x01020304, type: FrameType.Response, flags: 0x05, data: bytes("abc") });
    expect([...out]).toEqual([0, 0, 0, 3, 1, 2, 3, 4, 2, 5, 97, 98, 99]);
  });

  test("one frame round-trips, including an empty payload", () => {
    for (const data of [new Uint8Array(0), bytes("hello")]) {
      const d = new FrameDecoder();
      const got = frames(d.push(encodeFrame({ streamId: 7, type: FrameType.Request, flags: 0, data })));
      expect(got).toEqual([{ streamId: 7, type: FrameType.Request, flags: 0, data }]);
      expect(d.pending).toBe(0);
    }
  });

  test("a frame split at every byte boundary reassembles", () => {
    const wire = encodeFrame({ streamId: 3, type: FrameType.Request, flags: 1, data: bytes("split me anywhere") });
    for (let cut = 0; cut <= wire.length; cut++) {
      const d = new FrameDecoder();
      const got = [...frames(d.push(wire.subarray(0, cut))), ...frames(d.push(wire.subarray(cut)))];
      expect(got.length).toBe(1);
      expect(text(got[0]!.data)).toBe("split me anywhere");
    }
  });

  test("fed one byte at a time, frames come out whole and in order", () => {
    const wire = new Uint8Array([...encodeFrame({ streamId: 1, type: 1, flags: 0, data: bytes("a") }), ...encodeFrame({ streamId: 3, type: 1, flags: 0, data: bytes("bc") })]);
    const d = new FrameDecoder();
    const got: Frame[] = [];
    for (const b of wire) got.push(...frames(d.push(new Uint8Array([b]))));
    expect(got.map((f) => [f.streamId, text(f.data)])).toEqual([
      [1, "a"],
      [3, "bc"],
    ]);
  });

  test("random frames in random chunks (fuzz, fixed seeds)", () => {
    for (let seed = 1; seed <= 30; seed++) {
      const rand = rng(seed);
      const sent: Frame[] = [];
      const parts: Uint8Array[] = [];
      for (let i = 0; i < 40; i++) {
        const len = rand() < 0.1 ? Math.floor(rand() * 70000) : Math.floor(rand() * 40);
        const data = new Uint8Array(len).map(() => Math.floor(rand() * 256));
        const f = { streamId: 2 * i + 1, type: 1 + Math.floor(rand() * 3), flags: Math.floor(rand() * 8), data };
        sent.push(f);
        parts.push(encodeFrame(f));
      }
      const wire = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let off = 0;
      for (const p of parts) {
        wire.set(p, off);
        off += p.length;
      }
      const d = new FrameDecoder();
      const got: Frame[] = [];
      for (let at = 0; at < wire.length; ) {
        const n = 1 + Math.floor(rand() * (rand() < 0.5 ? 16 : 9000));
        got.push(...frames(d.push(wire.subarray(at, at + n))));
        at += n;
      }
      expect(got).toEqual(sent);
      expect(d.pending).toBe(0);
    }
  });

  test("a frame of exactly the maximum size is accepted", () => {
    const data = new Uint8Array(MAX_DATA_LENGTH).fill(7);
    const d = new FrameDecoder();
    const got = frames(d.push(encodeFrame({ streamId: 1, type: 1, flags: 0, data })));
    expect(got[0]!.data.length).toBe(MAX_DATA_LENGTH);
  });

  test("encoding more than 4 MiB fails", () => {
    expect(() => encodeFrame({ streamId: 1, type: 1, flags: 0, data: new Uint8Array(MAX_DATA_LENGTH + 1) })).toThrow(FrameTooLarge);
  });

  test("an oversized frame is reported and skipped, even split across chunks, and the next frame survives", () => {
    const length = MAX_DATA_LENGTH + 5;
    const header = new Uint8Array(HEADER_LENGTH);
    new DataView(header.buffer).setUint32(0, length);
    new DataView(header.buffer).setUint32(4, 9);
    header[8] = FrameType.Request;
    const next = encodeFrame({ streamId: 11, type: 1, flags: 0, data: bytes("after") });
    const d = new FrameDecoder();
    const out: Decoded[] = [];
    out.push(...d.push(header.subarray(0, 4)));
    out.push(...d.push(header.subarray(4)));
    // The body arrives in pieces; none of it is buffered.
    let left = length;
    while (left > 0) {
      const n = Math.min(left, 1 << 20);
      out.push(...d.push(new Uint8Array(n)));
      left -= n;
      expect(d.pending).toBe(left);
    }
    out.push(...d.push(next));
    expect(out.map((x) => x.kind)).toEqual(["oversized", "frame"]);
    expect(out[0]).toEqual({ kind: "oversized", streamId: 9, type: FrameType.Request, length });
    expect(text((out[1] as { frame: Frame }).frame.data)).toBe("after");
  });

  test("an incomplete frame stays pending", () => {
    const wire = encodeFrame({ streamId: 1, type: 1, flags: 0, data: bytes("abcdef") });
    const d = new FrameDecoder();
    expect(d.push(wire.subarray(0, 12))).toEqual([]);
    expect(d.pending).toBe(12);
  });
});

describe("envelope", () => {
  test("Request and Response round-trip with metadata and a status", () => {
    const req = { service: "svc", method: "M", payload: bytes("p"), timeoutNano: 5_000_000_000, metadata: [{ key: "containerd-namespace-ttrpc", value: "default" }] };
    expect(requestCodec().decode(requestCodec().encode(req))).toEqual(req);
    const res = responseCodec().decode(responseCodec().encode({ status: { code: Code.NOT_FOUND, message: "gone", details: [] }, payload: new Uint8Array(0) }));
    expect(res.status).toEqual({ code: Code.NOT_FOUND, message: "gone", details: [] });
  });

  test("the static codecs write and read what codecs built from request.proto and status.proto do", () => {
    const root = parseProtos([statusProto, requestProto]);
    const reflReq = codec<ReturnType<ReturnType<typeof requestCodec>["decode"]>>(root, "ttrpc.Request");
    const reflRes = codec<ReturnType<ReturnType<typeof responseCodec>["decode"]>>(root, "ttrpc.Response");
    const reqs = [
      { service: "containerd.task.v2.Task", method: "Create", payload: bytes("x".repeat(300)), timeoutNano: 2 ** 52, metadata: [{ key: "a", value: "b" }, { key: "", value: "v" }] },
      { service: "", method: "", payload: new Uint8Array(0), timeoutNano: 0, metadata: [] },
      { service: "é✓", method: "M", payload: new Uint8Array([0, 255, 7]), timeoutNano: 1, metadata: [{ key: "k", value: "ü".repeat(200) }] },
    ];
    for (const req of reqs) {
      expect(reflReq.decode(requestCodec().encode(req))).toEqual(req);
      expect(requestCodec().decode(reflReq.encode(req))).toEqual(req);
    }
    const responses = [
      { status: { code: Code.NOT_FOUND, message: "gone", details: [{ typeUrl: "t/x", value: new Uint8Array([1, 2]) }, { typeUrl: "", value: new Uint8Array(0) }] }, payload: bytes("p") },
      { status: { code: 0, message: "", details: [] }, payload: new Uint8Array(0) },
      { status: null, payload: bytes("only payload") },
    ];
    for (const res of responses) {
      expect(responseCodec().decode(reflRes.encode(res))).toEqual(res);
      // The reflection codec fills a status it did not see with null, as ours does.
      expect(reflRes.decode(responseCodec().encode(res))).toEqual(res);
    }
    // A field the envelope does not know (a newer ttrpc's) is skipped, not an error.
    const extra = new Uint8Array([...requestCodec().encode(reqs[0]!), (9 << 3) | 2, 2, 0x61, 0x62, (10 << 3) | 0, 0x96, 0x01]);
    expect(requestCodec().decode(extra)).toEqual(reqs[0]!);
  });

  test("an empty Response decodes as OK with no payload", () => {
    const res = responseCodec().decode(new Uint8Array(0));
    expect(res.status).toBeNull();
    expect(res.payload.length).toBe(0);
  });
});

describe("server and client over a unix socket", () => {
  const dir = mkdtempSync(join(tmpdir(), "tsrun-ttrpc-"));
  const sock = join(dir, "s.sock");
  const server = new TtrpcServer();
  let release: (() => void) | undefined;
  server.register("test.Echo", {
    Echo: (p) => p,
    Upper: (p) => bytes(text(p).toUpperCase()),
    Fail: () => {
      throw new TtrpcError(Code.NOT_FOUND, "no such thing");
    },
    Crash: () => {
      throw new Error("handler blew up");
    },
    Meta: (_p, ctx) => bytes(`${ctx.metadata.get("k")?.join(",")}|${ctx.deadline !== undefined}`),
    // Answers only when released: a call that blocks like Task.Wait.
    Block: () => new Promise<Uint8Array>((resolve) => (release = () => resolve(bytes("released")))),
    Big: (p) => new Uint8Array(Number(text(p))),
  });
  server.listen(sock);
  const clients: TtrpcClient[] = [];
  const connect = async () => {
    const c = await TtrpcClient.connect(sock);
    clients.push(c);
    return c;
  };
  afterAll(() => {
    for (const c of clients) c.close();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a unary call returns the handler's payload", async () => {
    const c = await connect();
    expect(text(await c.call("test.Echo", "Echo", bytes("ping")))).toBe("ping");
    expect((await c.call("test.Echo", "Echo", new Uint8Array(0))).length).toBe(0);
  });

  test("calls are served concurrently: a blocked call does not hold up the others", async () => {
    const c = await connect();
    const blocked = c.call("test.Echo", "Block", new Uint8Array(0));
    const results = await Promise.all([1, 2, 3].map((i) => c.call("test.Echo", "Upper", bytes(`x${i}`))));
    expect(results.map(text)).toEqual(["X1", "X2", "X3"]);
    release!();
    expect(text(await blocked)).toBe("released");
  });

  test("unknown services and methods are UNIMPLEMENTED", async () => {
    const c = await connect();
    const e1 = await c.call("test.Nope", "Echo", new Uint8Array(0)).catch((e) => e);
    expect(e1).toBeInstanceOf(TtrpcError);
    expect(e1.code).toBe(Code.UNIMPLEMENTED);
    expect(e1.message).toContain("test.Nope");
    const e2 = await c.call("test.Echo", "Nope", new Uint8Array(0)).catch((e) => e);
    expect(e2.code).toBe(Code.UNIMPLEMENTED);
    expect(e2.message).toContain("method Nope");
  });

  test("handler errors carry their status code; other errors become UNKNOWN", async () => {
    const c = await connect();
    const e1 = await c.call("test.Echo", "Fail", new Uint8Array(0)).catch((e) => e);
    expect([e1.code, e1.message]).toEqual([Code.NOT_FOUND, "no such thing"]);
    const e2 = await c.call("test.Echo", "Crash", new Uint8Array(0)).catch((e) => e);
    expect([e2.code, e2.message]).toEqual([Code.UNKNOWN, "handler blew up"]);
  });

  test("metadata and the timeout reach the handler", async () => {
    const c = await connect();
    expect(text(await c.call("test.Echo", "Meta", new Uint8Array(0), { metadata: { k: "v" }, timeoutMs: 5000 }))).toBe("v|true");
  });

  test("a response over 4 MiB becomes RESOURCE_EXHAUSTED, and one at the limit passes", async () => {
    const c = await connect();
    const e = await c.call("test.Echo", "Big", bytes(String(MAX_DATA_LENGTH + 10))).catch((x) => x);
    expect(e.code).toBe(Code.RESOURCE_EXHAUSTED);
    const ok = await c.call("test.Echo", "Big", bytes(String(MAX_DATA_LENGTH - 100)));
    expect(ok.length).toBe(MAX_DATA_LENGTH - 100);
  });

  test("bad frames get error responses and the connection stays usable", async () => {
    const responses = new Map<number, { code: number; message: string }>();
    const decoder = new FrameDecoder();
    let wake: (() => void) | undefined;
    const raw = await Bun.connect({
      unix: sock,
      socket: {
        data(_s, chunk) {
          for (const d of decoder.push(chunk)) {
            if (d.kind !== "frame") continue;
            const r = responseCodec().decode(d.frame.data);
            responses.set(d.frame.streamId, { code: r.status?.code ?? 0, message: r.status?.message ?? "" });
          }
          wake?.();
        },
      },
    });
    const until = async (n: number) => {
      const end = Date.now() + 10_000;
      while (responses.size < n && Date.now() < end) await new Promise<void>((r) => ((wake = r), setTimeout(r, 50)));
    };
    const echo = (streamId: number) => encodeFrame({ streamId, type: FrameType.Request, flags: 0, data: requestCodec().encode({ service: "test.Echo", method: "Echo", payload: bytes("ok"), timeoutNano: 0, metadata: [] }) });
    // An even stream id, a payload that is not a Request, and an oversized frame.
    raw.write(echo(2));
    raw.write(encodeFrame({ streamId: 5, type: FrameType.Request, flags: 0, data: new Uint8Array([0xff, 0xff, 0xff]) }));
    const big = new Uint8Array(HEADER_LENGTH + MAX_DATA_LENGTH + 1);
    new DataView(big.buffer).setUint32(0, MAX_DATA_LENGTH + 1);
    new DataView(big.buffer).setUint32(4, 7);
    big[8] = FrameType.Request;
    let off = 0;
    const pump = () => {
      while (off < big.length) {
        const n = raw.write(big.subarray(off));
        if (n <= 0) return false;
        off += n;
      }
      return true;
    };
    const end = Date.now() + 20_000;
    while (!pump() && Date.now() < end) await Bun.sleep(5);
    raw.write(echo(9));
    await until(4);
    raw.end();
    expect(responses.get(2)?.code).toBe(Code.INVALID_ARGUMENT);
    expect(responses.get(5)?.code).toBe(Code.INVALID_ARGUMENT);
    expect(responses.get(7)?.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(responses.get(9)?.code).toBe(Code.OK);
  });

  test("pending calls fail with UNAVAILABLE when the connection closes", async () => {
    const c = await connect();
    const blocked = c.call("test.Echo", "Block", new Uint8Array(0));
    c.close();
    const e = await blocked.catch((x) => x);
    expect(e.code).toBe(Code.UNAVAILABLE);
    release?.();
  });

  test("abstract sockets work too", async () => {
    const name = `\0tsrun-ttrpc-test-${process.pid}`;
    const s = new TtrpcServer();
    s.register("test.Echo", { Echo: (p) => p });
    s.listen(name);
    try {
      const c = await TtrpcClient.connect(name);
      expect(text(await c.call("test.Echo", "Echo", bytes("abstract")))).toBe("abstract");
      c.close();
    } finally {
      s.close();
    }
  });
});
