"""Draws the training and validation loss of a train_log.tsv as a PNG with
the standard library only (zlib + struct): a plain line plot, training loss
in blue, validation loss as red dots, loss 0..9 on the y axis."""
import struct
import sys
import zlib

W, H, M = 640, 360, 30  # size and margin in pixels


def main(tsv, out):
    rows = [l.rstrip("\n").split("\t") for l in open(tsv)][1:]
    steps = [int(r[0]) for r in rows]
    loss = [float(r[1]) for r in rows]
    val = [(int(r[0]), float(r[6])) for r in rows if len(r) > 6 and r[6]]
    img = [[(255, 255, 255)] * W for _ in range(H)]
    n = max(steps)
    ymax = 9.0

    def xy(s, v):
        return M + int((W - 2 * M) * (s - 1) / max(1, n - 1)), H - M - int((H - 2 * M) * min(v, ymax) / ymax)

    for x in range(M, W - M):  # axes and a grid line per loss unit
        img[H - M][x] = (0, 0, 0)
        for g in range(1, 10):
            y = H - M - int((H - 2 * M) * g / ymax)
            if 0 <= y < H and x % 4 == 0:
                img[y][x] = (200, 200, 200)
    for y in range(M, H - M + 1):
        img[y][M] = (0, 0, 0)
    prev = None
    for s, v in zip(steps, loss):
        p = xy(s, v)
        if prev:
            k = max(abs(p[0] - prev[0]), abs(p[1] - prev[1]), 1)
            for i in range(k + 1):
                x = prev[0] + (p[0] - prev[0]) * i // k
                y = prev[1] + (p[1] - prev[1]) * i // k
                img[y][x] = (30, 80, 200)
        prev = p
    for s, v in val:
        x, y = xy(s, v)
        for dy in range(-3, 4):
            for dx in range(-3, 4):
                if 0 <= y + dy < H and 0 <= x + dx < W:
                    img[y + dy][x + dx] = (210, 40, 40)
    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in img)

    def chunk(t, d):
        c = struct.pack(">I", len(d)) + t + d
        return c + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    open(out, "wb").write(png)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
