"""Dominant colours: k-means in CIELAB on a ~4k-pixel copy, seeded, so the same file gives the same palette."""
from __future__ import annotations

import cv2
import numpy as np

CLUSTERS = 8
SAMPLE_EDGE = 64  # ~4k pixels: plenty for colour statistics, ~1 ms of k-means
ITERATIONS = 12
MERGE_DELTA_E = 7.0  # clusters closer than this look like one colour
MIN_WEIGHT = 0.005


def _kmeans(points: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Plain Lloyd's with k-means++ seeding from a fixed generator: deterministic for the same input."""
    rng = np.random.default_rng(seed)
    seeds = [points[len(points) // 2]]
    d2 = ((points - seeds[0]) ** 2).sum(1)
    for _ in range(1, k):
        if d2.sum() <= 0:
            break
        seeds.append(points[rng.choice(len(points), p=d2 / d2.sum())])
        d2 = np.minimum(d2, ((points - seeds[-1]) ** 2).sum(1))
    centers = np.array(seeds, np.float32)
    for _ in range(ITERATIONS):
        labels = _nearest(points, centers)
        sums = np.zeros_like(centers)
        np.add.at(sums, labels, points)
        counts = np.bincount(labels, minlength=len(centers))[:, None]
        moved = np.where(counts > 0, sums / np.maximum(counts, 1), centers).astype(np.float32)
        if np.abs(moved - centers).max() < 0.05:
            break
        centers = moved
    return centers


def _nearest(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    # |p - c|^2 = |p|^2 - 2 p.c + |c|^2; |p|^2 is the same for every centre.
    return ((centers**2).sum(1)[None, :] - 2 * points @ centers.T).argmin(1)


def dominant_colors(rgb: np.ndarray, k: int = CLUSTERS) -> list[dict]:
    """5-8 colours for natural images (fewer only when the image has fewer), heaviest first, weights summing to 1."""
    h, w = rgb.shape[:2]
    scale = SAMPLE_EDGE / max(h, w)
    if scale < 1:
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    pixels = rgb.reshape(-1, 3)
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB).reshape(-1, 3)
    centers = _kmeans(lab, min(k, len(np.unique(pixels, axis=0))))
    labels = _nearest(lab, centers)
    # Merge near-identical clusters (greedy, heaviest first) so no colour is listed twice.
    counts = np.bincount(labels, minlength=len(centers))
    groups: list[list[int]] = []
    for i in np.argsort(-counts, kind="stable"):
        for g in groups:
            if np.linalg.norm(centers[g[0]] - centers[i]) < MERGE_DELTA_E:
                g.append(i)
                break
        else:
            groups.append([i])
    total = len(labels)
    out = []
    for g in groups:
        members = np.isin(labels, g)
        weight = members.sum() / total
        if weight < MIN_WEIGHT:
            continue
        r, gg, b = (int(round(c)) for c in pixels[members].mean(0))
        out.append({"hex": f"#{r:02x}{gg:02x}{b:02x}", "rgb": [r, gg, b], "weight": weight})
    norm = sum(c["weight"] for c in out)
    for c in out:
        c["weight"] = round(c["weight"] / norm, 4)
    return sorted(out, key=lambda c: -c["weight"])
