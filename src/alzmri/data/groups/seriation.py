"""Order of the slices within each group (spectral seriation, 2-opt) and a common orientation."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from alzmri.data.groups.similarity import SimilarityFeatures

#: Groups larger than this get no positions (a group that large is not one scan).
MAX_POSITION_GROUP = 1024
_TWO_OPT_MAX = 256
#: Fine distances (1 - similarity) below this are copies of one slice, not neighbours.
_COPY_DISTANCE = 0.02


def _fiedler_order(w: np.ndarray) -> np.ndarray:
    """Spectral seriation of a similarity matrix (m, m): indices in chain order.

    Gaussian affinity exp(-(1 - w) / tau) with tau the median distance from a slice to
    its nearest *distinct* slice (copies closer than :data:`_COPY_DISTANCE` are skipped,
    so that a set full of augmented copies still gets a useful width); the order is that
    of the Fiedler vector of the graph Laplacian.
    """
    m = len(w)
    if m < 2:
        return np.arange(m)
    d = np.clip(1.0 - w.astype(np.float64), 0.0, None)
    dd = np.where(d < _COPY_DISTANCE, np.inf, d)
    np.fill_diagonal(dd, np.inf)
    nn = dd.min(axis=1)
    nn = nn[np.isfinite(nn)]
    tau = max(float(np.median(nn)) if len(nn) else _COPY_DISTANCE, 1e-6)
    aff = np.exp(-d / tau)
    np.fill_diagonal(aff, 0.0)
    lap = np.diag(aff.sum(axis=1)) - aff
    _, vec = np.linalg.eigh(lap)
    return np.argsort(vec[:, 1], kind="stable")


def _two_opt(order: np.ndarray, dist: np.ndarray, max_passes: int = 20) -> np.ndarray:
    """Shorten an open path by segment reversals (2-opt); ``dist`` is (m, m)."""
    o = list(order)
    m = len(o)
    for _ in range(max_passes):
        improved = False
        for a in range(0, m - 1):
            for b in range(a + 1, m):
                before = (dist[o[a - 1], o[a]] if a > 0 else 0.0) + (dist[o[b], o[b + 1]] if b < m - 1 else 0.0)
                after = (dist[o[a - 1], o[b]] if a > 0 else 0.0) + (dist[o[a], o[b + 1]] if b < m - 1 else 0.0)
                if after < before - 1e-9:
                    o[a : b + 1] = o[a : b + 1][::-1]
                    improved = True
        if not improved:
            break
    return np.asarray(o, dtype=np.int64)



def _chain_orders(
    group: np.ndarray,
    n_groups: int,
    feats: SimilarityFeatures,
    wi: np.ndarray,
    wj: np.ndarray,
    ws: np.ndarray,
    bounds: np.ndarray,
) -> list[np.ndarray]:
    """Chain order of every group's readable members (image indices, in order).

    ``wi, wj, ws`` are the examined within-group pairs and their (rotation-searched)
    similarities, sorted by group; ``bounds[g]:bounds[g+1]`` are group ``g``'s pairs.
    Groups over :data:`MAX_POSITION_GROUP` are left out.
    """
    orders: list[np.ndarray] = []
    order_all = np.argsort(group, kind="stable")
    starts = np.searchsorted(group[order_all], np.arange(n_groups + 1))
    for g in range(n_groups):
        members = order_all[starts[g] : starts[g + 1]]
        members = np.sort(members[feats.valid[members]])
        m = len(members)
        if m == 0 or m > MAX_POSITION_GROUP:
            continue
        if m == 1:
            orders.append(members)
            continue
        fm = feats.fine[members]
        w = np.maximum(fm @ fm.T, fm @ feats.fine_flipped(members).T)
        # rotation-searched similarities of the examined pairs replace the plain ones
        pi, pj, v = wi[bounds[g] : bounds[g + 1]], wj[bounds[g] : bounds[g + 1]], ws[bounds[g] : bounds[g + 1]]
        a = np.minimum(np.searchsorted(members, pi), m - 1)
        b = np.minimum(np.searchsorted(members, pj), m - 1)
        ok = (members[a] == pi) & (members[b] == pj)
        a, b, v = a[ok], b[ok], v[ok]
        w[a, b] = np.maximum(w[a, b], v)
        w[b, a] = w[a, b]
        o = _fiedler_order(w)
        if m <= _TWO_OPT_MAX:
            o = _two_opt(o, 1.0 - w.astype(np.float64))
        orders.append(members[o])
    return orders


def _orient(groups: list[np.ndarray], feats: SimilarityFeatures, n_bins: int = 8) -> list[np.ndarray]:
    """Flip chain orders so that all groups run the same way (position 0 = larger cross-section)."""
    if not groups:
        return groups

    def rel(o: np.ndarray) -> np.ndarray:
        m = len(o)
        u = np.arange(m) / (m - 1) if m > 1 else np.zeros(1)
        return np.minimum((u * n_bins).astype(int), n_bins - 1)

    # start: each group oriented so that its foreground area decreases along the chain
    oriented = []
    for o in groups:
        if len(o) >= 2:
            fg = feats.foreground[o]
            slope = np.polyfit(np.arange(len(o)), fg, 1)[0] if len(o) > 2 else fg[-1] - fg[0]
            oriented.append(o[::-1] if slope > 0 else o)
        else:
            oriented.append(o)
    for _ in range(2):
        multi = [o for o in oriented if len(o) >= 3]
        if not multi:
            break
        members = np.concatenate(multi)
        bins = np.concatenate([rel(o) for o in multi])
        onehot = sp.csr_matrix((np.ones(len(bins)), (bins, np.arange(len(bins)))), shape=(n_bins, len(bins)))
        tmpl = np.asarray(onehot @ feats.coarse[members].astype(np.float64))
        cnt = np.bincount(bins, minlength=n_bins).astype(np.float64)
        if (cnt == 0).any():
            break
        tmpl /= cnt[:, None]
        new = []
        for o in oriented:
            if len(o) < 2:
                new.append(o)
                continue
            b = rel(o)
            x = np.maximum(feats.coarse[o] @ tmpl.T, feats.coarse_flipped(o) @ tmpl.T)  # (m, bins)
            fwd = x[np.arange(len(o)), b].sum()
            bwd = x[np.arange(len(o)), b[::-1]].sum()
            new.append(o[::-1] if bwd > fwd + 1e-9 else o)
        oriented = new
    # global direction: the cross-section shrinks along increasing position
    trend = 0.0
    for o in oriented:
        if len(o) >= 2:
            trend += float(np.corrcoef(np.arange(len(o)), feats.foreground[o])[0, 1]) if feats.foreground[o].std() > 0 else 0.0
    if trend > 0:
        oriented = [o[::-1] for o in oriented]
    return oriented
