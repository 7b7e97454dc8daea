/**
 * A write hands SQLite the very buffer the file was read into and writes that
 * buffer back out (lib/sqlite.ts openImage / Db.fileBytes). These tests check
 * the buffer is used when it holds the commit, is refused when sql.js moved the
 * file elsewhere, and that the bytes written are always the committed database.
 */
import { afterAll, describe, expect, test } from "vitest";
import { writeFileSync } from "node:fs";
import * as path from "node:path";
import { openBytes, openImage, type Db, type FileImage } from "../lib/sqlite.ts";
import { readFileWithRoom } from "../lib/_runtime.ts";
import { initDatabase, readSnapshot, writeTransaction } from "../lib/storage.ts";
import { sqlite3, tempDir } from "./_helpers.ts";

const dirs: { cleanup: () => void }[] = [];
afterAll(() => dirs.forEach((d) => d.cleanup()));


/** A file image of `bytes` with `room` spare bytes, as storage.ts reads one. */
function imageOf(bytes: Uint8Array, room: number): FileImage {
  const buffer = new Uint8Array(bytes.length + room);
  buffer.set(bytes);
  return { buffer, length: bytes.length };
}

async function seed(): Promise<Uint8Array> {
  const db = await openBytes();
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB); CREATE INDEX t_v ON t(v);");
  db.exec("BEGIN");
  for (let i = 0; i < 500; i++) db.run("INSERT INTO t (v, b) VALUES (?, ?)", [`row ${i} `.repeat(20), new Uint8Array(100).fill(i % 251)]);
  db.exec("COMMIT");
  const bytes = db.export();
  db.close();
  return bytes;
}

function rows(db: Db): unknown[] {
  return db.all("SELECT id, v, b FROM t ORDER BY id");
}

async function contentsOf(bytes: Uint8Array): Promise<{ rows: unknown[]; integrity: string }> {
  const db = await openBytes(bytes);
  try {
    return { rows: rows(db), integrity: String(db.value("PRAGMA integrity_check")) };
  } finally {
    db.close();
  }
}

describe("storage image: a write's bytes come from the buffer the file was read into", () => {
  test("a small transaction is written from the same memory, and the file is the committed database", async () => {
    const image = imageOf(await seed(), 1 << 20);
    const db = await openImage(image);
    db.exec("BEGIN IMMEDIATE");
    db.run("INSERT INTO t (v) VALUES ('new')");
    db.run("UPDATE t SET v = 'changed' WHERE id = 7");
    db.exec("COMMIT");
    const out = db.fileBytes();
    expect(out.buffer).toBe(image.buffer.buffer); // no copy, no export
    const expected = await contentsOf(db.export());
    db.close();

    const t = tempDir("orch-image-");
    dirs.push(t);
    const file = path.join(t.dir, "out.db");
    writeFileSync(file, out);
    expect(sqlite3(file, "PRAGMA integrity_check; SELECT count(*) FROM t; SELECT v FROM t WHERE id = 7;")).toBe("ok\n501\nchanged");
    expect(await contentsOf(out)).toEqual(expected);
  });

  test("a transaction that outgrows the spare room is written from an export, not from the stale buffer", async () => {
    const image = imageOf(await seed(), 4096);
    const db = await openImage(image);
    db.exec("BEGIN IMMEDIATE");
    db.run("INSERT INTO t (v, b) VALUES ('big', ?)", [new Uint8Array(2 << 20).fill(7)]);
    db.exec("COMMIT");
    const out = db.fileBytes();
    expect(out.buffer).not.toBe(image.buffer.buffer);
    const got = await contentsOf(out);
    expect(got.integrity).toBe("ok");
    expect(got.rows).toHaveLength(501);
    db.close();
  });

  test("many random transactions: the bytes written always equal the exported database; both paths are taken", async () => {
    let bytes = await seed();
    let seedState = 12345;
    const rand = (n: number) => {
      seedState = (seedState * 1103515245 + 12345) & 0x7fffffff;
      return seedState % n;
    };
    const used = { inPlace: 0, exported: 0 };
    for (let round = 0; round < 30; round++) {
      const room = [0, 8192, 1 << 20, 1 << 20][rand(4)]!;
      const image = imageOf(bytes, room);
      const db = await openImage(image);
      db.exec("BEGIN IMMEDIATE");
      const ops = 1 + rand(8);
      for (let i = 0; i < ops; i++) {
        const op = rand(4);
        if (op === 0) db.run("INSERT INTO t (v, b) VALUES (?, ?)", [`r${round}-${i} `.repeat(1 + rand(100)), new Uint8Array(rand(8000)).fill(round)]);
        else if (op === 1) db.run("DELETE FROM t WHERE id % 13 = ?", [rand(13)]);
        else if (op === 2) db.run("UPDATE t SET v = v || ? WHERE id % 5 = ?", ["+".repeat(rand(20)), rand(5)]);
        else db.run("UPDATE t SET b = ? WHERE id = (SELECT max(id) FROM t)", [new Uint8Array(rand(40000))]);
      }
      db.exec("COMMIT");
      const out = db.fileBytes();
      if (out.buffer === image.buffer.buffer) used.inPlace++;
      else used.exported++;
      const expected = rows(db);
      const got = await contentsOf(out);
      expect(got.integrity, `round ${round}`).toBe("ok");
      expect(got.rows, `round ${round}`).toEqual(expected);
      bytes = out.slice();
      db.close();
    }
    expect(used.inPlace).toBeGreaterThan(5);
    expect(used.exported).toBeGreaterThan(0);
  });

  test("a write larger than the writer's spare room still lands whole (through writeTransaction)", async () => {
    const t = tempDir("orch-image-");
    dirs.push(t);
    const file = path.join(t.dir, "coord.db");
    await initDatabase(file);
    const blob = new Uint8Array(20 << 20).fill(3); // more than storage.ts's 16 MiB of room
    await writeTransaction(file, (db) => db.run("INSERT INTO runs (id, goal, status, created_at, updated_at) VALUES ('big', ?, 'active', 1, 1)", [new TextDecoder().decode(blob)]));
    await writeTransaction(file, (db) => db.run("UPDATE runs SET summary = 'after' WHERE id = 'big'"));
    const db = await readSnapshot(file);
    try {
      expect(db.value("SELECT length(goal) FROM runs WHERE id = 'big'")).toBe(20 << 20);
      expect(db.value("SELECT summary FROM runs WHERE id = 'big'")).toBe("after");
    } finally {
      db.close();
    }
    expect(sqlite3(file, "PRAGMA integrity_check")).toBe("ok");
    const { length } = readFileWithRoom(file, 0);
    expect(length).toBeGreaterThan(20 << 20);
  });
});
