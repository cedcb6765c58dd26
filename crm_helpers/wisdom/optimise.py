"""Contact optimisation: who gets which offer through which channel, for the most expected margin.

The input is the candidate table (one row per customer x channel x offer, see the issue-12
contract): ``customer_id, channel, offer, uplift, p_response, value, expected_margin, cost,
allowed``. Each row's worth is its *net value* ``expected_margin - cost``; a plan picks rows to
maximise the total net value under

- a **budget**: total contact cost <= ``budget``;
- **channel capacities**: contacts per channel <= ``capacity[channel]`` (a channel missing from
  the dict is unlimited), for example the call centre's hours;
- a **per-customer limit**: at most ``max_per_customer`` contacts per customer in the period;
- **conflict rules**: for each pair in ``conflicts`` (such as ``("email", "sms")``), never both
  channels for the same customer and offer;
- **consent**: rows with ``allowed == False`` are never chosen, nor rows with a net value <= 0.

Two solvers give a :class:`Plan`:

- ``"milp"``: the exact mixed-integer programme, one binary variable per eligible row, solved by
  HiGHS through :func:`scipy.optimize.milp` (sparse constraints). ``bound`` is HiGHS's dual bound.
- ``"lagrangian"``: the budget and capacities are the only constraints that couple customers, so
  they are moved into the objective with multipliers (a price per unit of cost and per contact in
  each channel). What is left splits into one small problem per customer, solved exactly and
  vectorised in numpy. Every multiplier vector gives an upper bound on the optimum (the dual
  value); the multipliers are searched by a level bundle method (cutting planes with a proximity
  step, tiny LPs in HiGHS), and each promising relaxed solution is *repaired* into a feasible plan
  (drop the least efficient contacts until the budget and capacities hold, then fill what is left
  greedily). ``bound`` is the best dual value, an upper bound on the LP optimum, and ``gap =
  (bound - objective) / bound`` bounds how far the plan can be from the true optimum.

``"auto"`` solves exactly below :data:`MILP_MAX_ROWS` eligible rows, by relaxation above.
:func:`greedy` is the baseline "contact the top rows by a key while the rules allow, until the
budget is spent", and :func:`compare` tabulates plans side by side.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

CHANNELS = ("email", "sms", "call")
OFFERS = ("cross_sell", "up_sell", "retention", "win_back")
#: Contact costs per channel (the contract's default settings).
CONTACT_COSTS = {"email": 0.05, "sms": 0.12, "call": 4.50}
CONFLICTS = (("email", "sms"),)
#: "auto" solves the exact MILP up to this many eligible rows, by Lagrangian relaxation above.
MILP_MAX_ROWS = 150_000
#: The Lagrangian search stops once the plan is within this fraction of its bound.
TARGET_GAP = 0.001


@dataclass
class Plan:
    """A contact plan: the chosen candidate rows and how good they are.

    ``chosen`` holds the selected candidate rows (their original columns and index);
    ``objective`` their total net value (``expected_margin - cost``); ``bound`` an upper bound on
    the best achievable objective (NaN for greedy plans); ``gap`` = (bound - objective) / bound;
    ``method`` the solver; ``seconds`` the wall time; ``details`` solver facts (status,
    iterations).
    """

    chosen: pd.DataFrame
    objective: float
    bound: float
    gap: float
    method: str
    seconds: float
    details: dict = field(default_factory=dict)

    @property
    def cost(self) -> float:
        """Total contact cost of the plan."""
        return float(self.chosen["cost"].sum())

    @property
    def contacts(self) -> int:
        """Number of contacts in the plan."""
        return len(self.chosen)


def net_value(candidates: pd.DataFrame) -> pd.Series:
    """Each candidate row's net value: expected incremental margin minus the contact cost."""
    return candidates["expected_margin"] - candidates["cost"]


# ---------------------------------------------------------------------------------------------
# The problem in arrays


class _Problem:
    """The eligible rows of a candidate table as integer-coded numpy arrays."""

    def __init__(self, candidates, budget, capacity, max_per_customer, conflicts, eligible):
        self.candidates = candidates
        keep = np.flatnonzero(eligible)
        rows = candidates.iloc[keep]
        self.rows = keep  # positions in `candidates`
        self.cust, self.customers = pd.factorize(rows["customer_id"], sort=True)
        self.ch, self.channels = pd.factorize(rows["channel"], sort=True)
        self.offer, self.offers = pd.factorize(rows["offer"], sort=True)
        self.cust = self.cust.astype(np.int64)
        self.ch = self.ch.astype(np.int64)
        self.offer = self.offer.astype(np.int64)
        self.cost = rows["cost"].to_numpy(float)
        self.net = (rows["expected_margin"] - rows["cost"]).to_numpy(float)
        self.budget = np.inf if budget is None else float(budget)
        self.cap = np.array([float(capacity.get(c, np.inf)) if capacity else np.inf for c in self.channels])
        self.k = int(max_per_customer)
        index = {c: i for i, c in enumerate(self.channels)}
        self.pairs = [(index[a], index[b]) for a, b in conflicts if a in index and b in index and a != b]
        self.n, self.n_cust = len(keep), len(self.customers)
        self.n_ch, self.n_offer = len(self.channels), len(self.offers)
        self.slot = (self.cust * self.n_offer + self.offer) * self.n_ch + self.ch
        seen = np.zeros(self.n_cust * self.n_offer * self.n_ch, bool)
        seen[self.slot] = True
        if int(seen.sum()) != self.n:
            raise ValueError("the candidate table repeats a customer x channel x offer row")

    def violations(self, sel: np.ndarray) -> list[str]:
        """Rules a selection (positions into the eligible rows) breaks; empty when feasible."""
        out = []
        if self.cost[sel].sum() > self.budget * (1 + 1e-9) + 1e-9:
            out.append("budget")
        counts = np.bincount(self.ch[sel], minlength=self.n_ch)
        out += [f"capacity {self.channels[c]}" for c in np.flatnonzero(counts > self.cap)]
        if sel.size and np.bincount(self.cust[sel]).max() > self.k:
            out.append("per-customer limit")
        key = (self.cust[sel] * self.n_offer + self.offer[sel]) * self.n_ch
        have = set((key + self.ch[sel]).tolist())
        for a, b in self.pairs:
            if any(k + a in have and k + b in have for k in key.tolist()):
                out.append("conflict")
                break
        return out


def _empty_plan(candidates: pd.DataFrame, method: str, started: float, bound: float = 0.0) -> Plan:
    return Plan(candidates.iloc[:0], 0.0, bound, 0.0, method, time.perf_counter() - started)


def _plan(p: _Problem, sel: np.ndarray, bound: float, method: str, started: float, details: dict) -> Plan:
    sel = np.sort(sel)
    objective = float(p.net[sel].sum())
    gap = (bound - objective) / bound if bound > 0 else 0.0
    chosen = p.candidates.iloc[p.rows[sel]]
    return Plan(chosen, objective, float(bound), max(float(gap), 0.0), method, time.perf_counter() - started,
                details)


# ---------------------------------------------------------------------------------------------
# Exact: mixed-integer programme


def _milp(p: _Problem, time_limit: float, started: float, mip_rel_gap: float = 1e-6) -> Plan:
    """One binary per eligible row; budget, capacity, per-customer and conflict rows as constraints."""
    blocks, upper = [], []
    idx = np.arange(p.n)
    if np.isfinite(p.budget):
        blocks.append(sparse.coo_array((p.cost, (np.zeros(p.n, int), idx)), shape=(1, p.n)))
        upper.append([p.budget])
    for c in np.flatnonzero(np.isfinite(p.cap)):
        cols = idx[p.ch == c]
        blocks.append(sparse.coo_array((np.ones(cols.size), (np.zeros(cols.size, int), cols)), shape=(1, p.n)))
        upper.append([p.cap[c]])
    per_customer = np.bincount(p.cust, minlength=p.n_cust)
    crowded = per_customer > p.k  # customers with fewer rows than the limit need no constraint
    if crowded.any():
        row_of = np.cumsum(crowded) - 1
        cols = idx[crowded[p.cust]]
        blocks.append(sparse.coo_array((np.ones(cols.size), (row_of[p.cust[cols]], cols)),
                                       shape=(int(crowded.sum()), p.n)))
        upper.append(np.full(int(crowded.sum()), float(p.k)))
    if p.k > 1:  # with one contact per customer, the conflicts follow from the per-customer limit
        frame = pd.DataFrame({"cust": p.cust, "offer": p.offer, "ch": p.ch, "i": idx})
        for a, b in p.pairs:
            both = frame[frame.ch == a].merge(frame[frame.ch == b], on=["cust", "offer"])
            m = len(both)
            if m:
                r = np.repeat(np.arange(m), 2)
                cols = np.column_stack([both.i_x, both.i_y]).ravel()
                blocks.append(sparse.coo_array((np.ones(2 * m), (r, cols)), shape=(m, p.n)))
                upper.append(np.ones(m))
    constraints = []
    if blocks:
        a = sparse.vstack(blocks).tocsr()
        ub = np.concatenate([np.asarray(u, float) for u in upper])
        constraints = [LinearConstraint(a, -np.inf, ub)]
    res = milp(-p.net, integrality=np.ones(p.n), bounds=Bounds(0, 1), constraints=constraints,
               options={"time_limit": float(time_limit), "mip_rel_gap": mip_rel_gap, "presolve": False})
    details = {"status": res.message, "variables": p.n, "constraints": sum(b.shape[0] for b in blocks)}
    if res.x is None:
        raise TimeoutError(f"HiGHS found no plan within {time_limit} s: {res.message}")
    sel = np.flatnonzero(res.x > 0.5)
    bound = -res.mip_dual_bound if res.mip_dual_bound is not None else -res.fun
    return _plan(p, sel, max(bound, float(p.net[sel].sum())), "milp", started, details)


# ---------------------------------------------------------------------------------------------
# At scale: Lagrangian relaxation of the budget and the capacities


class _Relaxation:
    """The per-customer problem at given prices, solved exactly for all customers at once.

    With prices ``lam`` (per unit of cost) and ``mu[c]`` (per contact in channel c) a row's
    reduced value is ``net - lam * cost - mu[channel]``. Each customer then picks, for every
    offer, a set of channels with no conflicting pair, at most ``k`` contacts in all, maximising
    the sum of reduced values (dense customer x offer x channel arrays; with k = 1 simply the best
    positive row).
    """

    def __init__(self, p: _Problem):
        self.p = p
        self.slot = p.slot
        self.size = p.n_cust * p.n_offer * p.n_ch
        self.row_at = np.full(self.size, -1, np.int64)
        self.row_at[self.slot] = np.arange(p.n)
        self.values = np.empty(self.size)
        bad = set(p.pairs) | {(b, a) for a, b in p.pairs}
        self.sets = [s for r in range(p.n_ch + 1) for s in itertools.combinations(range(p.n_ch), r)
                     if not any((a, b) in bad for a, b in itertools.combinations(s, 2))]

    def solve(self, lam: float, mu: np.ndarray) -> tuple[float, np.ndarray]:
        """Sum over customers of their best reduced value, and the chosen rows (eligible positions)."""
        p = self.p
        if p.k <= 0 or p.n == 0:
            return 0.0, np.empty(0, np.int64)
        self.values.fill(-np.inf)
        self.values[self.slot] = p.net - lam * p.cost - mu[p.ch]
        if p.k == 1:
            v = self.values.reshape(p.n_cust, -1)
            best = v.argmax(axis=1)
            top = v[np.arange(p.n_cust), best]
            take = top > 0
            flat = np.flatnonzero(take) * v.shape[1] + best[take]
            return float(top[take].sum()), self.row_at[flat]
        return self._solve_k()

    def _solve_k(self) -> tuple[float, np.ndarray]:
        p, k = self.p, self.p.k
        v = self.values.reshape(p.n_cust, p.n_offer, p.n_ch)
        sizes = np.array([len(s) for s in self.sets])
        set_value = np.stack([v[:, :, list(s)].sum(axis=2) if s else np.zeros(v.shape[:2]) for s in self.sets],
                             axis=2)
        # best[o, t]: the best channel set for offer o using at most t contacts
        h = np.empty((p.n_cust, p.n_offer, k + 1))
        h_arg = np.empty((p.n_cust, p.n_offer, k + 1), np.int64)
        for t in range(k + 1):
            masked = np.where(sizes <= t, set_value, -np.inf)
            h_arg[:, :, t] = masked.argmax(axis=2)
            h[:, :, t] = np.take_along_axis(masked, h_arg[:, :, t:t + 1], axis=2)[:, :, 0]
        # dynamic programme over offers: f[s] = best value of offers so far using at most s contacts
        f = h[:, 0, :].copy()
        used = np.empty((p.n_cust, p.n_offer, k + 1), np.int64)
        used[:, 0, :] = np.arange(k + 1)
        for o in range(1, p.n_offer):
            g = np.empty_like(f)
            for s in range(k + 1):
                options = np.stack([f[:, s - t] + h[:, o, t] for t in range(s + 1)], axis=1)
                used[:, o, s] = options.argmax(axis=1)
                g[:, s] = options.max(axis=1)
            f = g
        left = np.full(p.n_cust, k)
        picks = []
        everyone = np.arange(p.n_cust)
        for o in range(p.n_offer - 1, -1, -1):
            t = used[everyone, o, left]
            chosen_set = h_arg[everyone, o, t]
            for j, s in enumerate(self.sets):
                who = everyone[chosen_set == j]
                for c in s:
                    picks.append(self.row_at[(who * p.n_offer + o) * p.n_ch + c])
            left = left - t
        sel = np.concatenate(picks) if picks else np.empty(0, np.int64)
        return float(f[:, k].sum()), sel[sel >= 0]


def _fill(p: _Problem, sel: np.ndarray, order: np.ndarray, stop_at_budget: bool) -> np.ndarray:
    """Add rows from ``order`` (eligible positions, best first) to ``sel`` while every rule holds.

    With ``stop_at_budget`` the first row that does not fit in the budget ends the list (top-N
    semantics); otherwise it is skipped and cheaper rows after it may still fit.
    """
    count = np.bincount(p.cust[sel], minlength=p.n_cust)
    load = np.bincount(p.ch[sel], minlength=p.n_ch).astype(float)
    left = p.budget - p.cost[sel].sum()
    # drop rows that can never be added, so the loop below runs over few rows
    ok = (count[p.cust[order]] < p.k) & (load[p.ch[order]] < p.cap[p.ch[order]])
    if not stop_at_budget:
        ok &= p.cost[order] <= left + 1e-12
    order = order[ok]
    cheapest_after = np.minimum.accumulate(p.cost[order][::-1])[::-1] if order.size else order
    partners = {c: [b if a == c else a for a, b in p.pairs if c in (a, b)] for c in range(p.n_ch)}
    check_conflicts = p.k > 1 and p.pairs
    taken = set()
    if check_conflicts:
        taken = set(((p.cust[sel] * p.n_offer + p.offer[sel]) * p.n_ch + p.ch[sel]).tolist())
    count, load, cap = count.tolist(), load.tolist(), p.cap.tolist()
    added = []
    custs, chs, offers, costs = (p.cust[order].tolist(), p.ch[order].tolist(), p.offer[order].tolist(),
                                 p.cost[order].tolist())
    for j, i in enumerate(order.tolist()):
        if not stop_at_budget and left < cheapest_after[j] - 1e-12:
            break
        cu, ch, cost = custs[j], chs[j], costs[j]
        if count[cu] >= p.k or load[ch] >= cap[ch]:
            continue
        if cost > left + 1e-12:
            if stop_at_budget:
                break
            continue
        if check_conflicts:
            base = (cu * p.n_offer + offers[j]) * p.n_ch
            if any(base + b in taken for b in partners[ch]):
                continue
            taken.add(base + ch)
        count[cu] += 1
        load[ch] += 1
        left -= cost
        added.append(i)
    return np.concatenate([sel, np.asarray(added, np.int64)])


def _efficiency_order(p: _Problem, rows: np.ndarray) -> np.ndarray:
    """``rows`` sorted by net value per unit of cost, best first (free rows first, then by net value)."""
    ratio = np.where(p.cost[rows] > 0, p.net[rows] / np.maximum(p.cost[rows], 1e-300), np.inf)
    return rows[np.lexsort((-p.net[rows], -ratio))]


def _repair(p: _Problem, sel: np.ndarray, lam: float) -> np.ndarray:
    """A feasible plan from a relaxed solution: drop the least efficient contacts, then fill greedily."""
    reduced = p.net - lam * p.cost
    for c in np.flatnonzero(np.isfinite(p.cap)):
        in_c = sel[p.ch[sel] == c]
        if in_c.size > p.cap[c]:
            drop = in_c[np.argsort(-reduced[in_c], kind="stable")[int(p.cap[c]):]]
            sel = np.setdiff1d(sel, drop)
    if p.cost[sel].sum() > p.budget:
        ranked = _efficiency_order(p, sel)
        sel = ranked[np.cumsum(p.cost[ranked]) <= p.budget]
    chosen = np.zeros(p.n, bool)
    chosen[sel] = True
    return _fill(p, sel, _efficiency_order(p, np.flatnonzero(~chosen)), stop_at_budget=False)


def _lagrangian(p: _Problem, time_limit: float, started: float, progress: bool, target_gap: float,
                max_iter: int = 150) -> Plan:
    """Level bundle search over the prices; repair promising relaxed solutions into plans."""
    relax = _Relaxation(p)
    caps = np.flatnonzero(np.isfinite(p.cap))
    # box for the prices: beyond these every row of the channel (or with a cost) has reduced value <= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        lam_max = float(np.max(np.where(p.cost > 0, p.net / p.cost, 0.0), initial=0.0))
    widths = [lam_max if np.isfinite(p.budget) else 0.0]
    widths += [float(np.max(p.net[p.ch == c], initial=0.0)) for c in caps]
    widths = np.array(widths)
    free = widths > 0
    d = int(free.sum())
    rhs = np.concatenate([[p.budget if np.isfinite(p.budget) else 0.0], p.cap[caps]])

    def evaluate(u):
        y = u * widths
        mu = np.zeros(p.n_ch)
        mu[caps] = y[1:]
        value, sel = relax.solve(y[0], mu)
        use = np.concatenate([[p.cost[sel].sum()], np.bincount(p.ch[sel], minlength=p.n_ch)[caps]])
        dual = value + float(y @ rhs)
        grad = (rhs - use) * widths
        return dual, grad, sel, y[0], use

    best_sel = np.empty(0, np.int64)
    best_obj = 0.0
    u = np.zeros(len(widths))
    cuts_g, cuts_c = [], []  # model: dual(u) >= g @ u + c
    ub, best_u, lb = np.inf, u, -np.inf
    iterations = 0
    bar = _progress(progress, max_iter)
    for iterations in range(1, max_iter + 1):
        dual, grad, sel, lam, use = evaluate(u)
        cuts_g.append(grad[free])
        cuts_c.append(dual - grad[free] @ u[free])
        improved = dual < ub
        if improved:
            ub, best_u = dual, u.copy()
        feasible = use[0] <= rhs[0] * (1 + 1e-9) + 1e-9 if np.isfinite(p.budget) else True
        feasible = feasible and np.all(use[1:] <= rhs[1:])
        if improved or feasible or iterations % 5 == 0:
            plan_sel = _repair(p, sel, lam)
            obj = float(p.net[plan_sel].sum())
            if obj > best_obj:
                best_obj, best_sel = obj, plan_sel
        if d == 0:
            lb = ub
            break
        lb = max(lb, _model_min(np.array(cuts_g), np.array(cuts_c), d))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(gap=f"{(ub - best_obj) / max(ub, 1e-12):.4%}")
        if ub - best_obj <= target_gap * ub or ub - lb <= 1e-6 * max(ub, 1.0):
            break
        if time.perf_counter() - started > time_limit:
            break
        u = best_u.copy()
        u[free] = _level_step(np.array(cuts_g), np.array(cuts_c), best_u[free], lb + 0.3 * (ub - lb))
    if bar is not None:
        bar.close()
    details = {"iterations": iterations, "dual_lower": lb, "prices": dict(zip(
        ["budget"] + [str(p.channels[c]) for c in caps], (best_u * widths).round(6).tolist()))}
    return _plan(p, best_sel, max(ub, best_obj), "lagrangian", started, details)


def _model_min(g: np.ndarray, c: np.ndarray, d: int) -> float:
    """Minimum of the cutting-plane model max_j (g_j @ u + c_j) over the unit box (a lower bound)."""
    # variables (u, t): minimise t subject to g_j @ u - t <= -c_j
    res = linprog(np.r_[np.zeros(d), 1.0], A_ub=np.c_[g, -np.ones(len(g))], b_ub=-c,
                  bounds=[(0, 1)] * d + [(None, None)], method="highs")
    return float(res.fun) if res.status == 0 else -np.inf


def _level_step(g: np.ndarray, c: np.ndarray, centre: np.ndarray, level: float) -> np.ndarray:
    """The point of the unit box nearest ``centre`` (L1) where the cutting-plane model is <= ``level``."""
    d = len(centre)
    # variables (u, z): minimise sum z subject to |u - centre| <= z and every cut <= level
    eye = np.eye(d)
    a = np.vstack([np.c_[g, np.zeros((len(g), d))], np.c_[eye, -eye], np.c_[-eye, -eye]])
    b = np.r_[level - c, centre, -centre]
    res = linprog(np.r_[np.zeros(d), np.ones(d)], A_ub=a, b_ub=b, bounds=[(0, 1)] * d + [(0, None)] * d,
                  method="highs")
    return res.x[:d] if res.status == 0 else centre


def _progress(progress: bool, total: int):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="Lagrangian prices", leave=False)


# ---------------------------------------------------------------------------------------------
# Public API


def _eligible(candidates: pd.DataFrame) -> np.ndarray:
    net = net_value(candidates).to_numpy(float)
    return candidates["allowed"].fillna(False).to_numpy(bool) & (net > 0) & np.isfinite(net)


def optimise(candidates: pd.DataFrame, budget: float, capacity: dict[str, int] | None = None,
             max_per_customer: int = 1, conflicts=CONFLICTS, method: str = "auto", time_limit: float = 600,
             progress: bool = False, target_gap: float = TARGET_GAP) -> Plan:
    """The contact plan with the most expected net margin under budget, capacities, limits and conflicts.

    Args:
        candidates: the candidate table (contract columns; ``expected_margin``, ``cost``,
            ``allowed``, ``customer_id``, ``channel``, ``offer`` are used).
        budget: most total contact cost (``None`` for no budget).
        capacity: most contacts per channel; channels not listed are unlimited.
        max_per_customer: most contacts per customer in the plan.
        conflicts: pairs of channels a customer never gets both of for the same offer.
        method: ``"milp"`` (exact), ``"lagrangian"`` (at scale) or ``"auto"`` (exact below
            :data:`MILP_MAX_ROWS` eligible rows).
        time_limit: seconds for the solver (the MILP raises ``TimeoutError`` if it has no plan
            by then; the relaxation returns its best plan so far).
        progress: show a tqdm bar for the Lagrangian search.
        target_gap: the Lagrangian search stops when the plan is within this fraction of its bound.
    Returns:
        A :class:`Plan`; ``plan.chosen`` never holds a row that is not allowed or has a net value
        <= 0, and respects every rule.
    """
    started = time.perf_counter()
    if method not in ("auto", "milp", "lagrangian"):
        raise ValueError(f"method must be 'auto', 'milp' or 'lagrangian', not {method!r}")
    p = _Problem(candidates, budget, capacity or {}, max_per_customer, conflicts, _eligible(candidates))
    if method == "auto":
        method = "milp" if p.n <= MILP_MAX_ROWS else "lagrangian"
    if p.n == 0 or p.k <= 0 or p.budget < 0:
        return _empty_plan(candidates, method, started)
    if method == "milp":
        return _milp(p, time_limit, started)
    return _lagrangian(p, time_limit, started, progress, target_gap)


def solve_both(candidates: pd.DataFrame, budget: float, capacity: dict[str, int] | None = None,
               max_per_customer: int = 1, conflicts=CONFLICTS, max_rows: int = MILP_MAX_ROWS,
               time_limit: float = 600) -> dict[str, Plan]:
    """The same problem solved by relaxation and, when it has at most ``max_rows`` eligible rows, exactly.

    Returns ``{"milp": Plan, "lagrangian": Plan}`` (no ``"milp"`` above ``max_rows``), so a
    notebook can show how close the relaxation comes to the exact optimum.
    """
    rules = dict(budget=budget, capacity=capacity, max_per_customer=max_per_customer, conflicts=conflicts,
                 time_limit=time_limit)
    out = {}
    if int(_eligible(candidates).sum()) <= max_rows:
        out["milp"] = optimise(candidates, method="milp", **rules)
    out["lagrangian"] = optimise(candidates, method="lagrangian", **rules)
    return out


def solver_table(plans: dict[str, Plan]) -> pd.DataFrame:
    """Solvers side by side: contacts, cost, objective (expected net margin), bound, gap and seconds."""
    rows = {name: {"contacts": p.contacts, "cost": p.cost, "objective": p.objective, "bound": p.bound, "gap": p.gap,
                   "seconds": p.seconds} for name, p in plans.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("method")


def greedy(candidates: pd.DataFrame, key: str, budget: float, capacity: dict[str, int] | None = None,
           max_per_customer: int = 1, conflicts=CONFLICTS) -> Plan:
    """Baseline "contact the top rows by ``key``": down the list while the rules allow, until the budget runs out.

    Rows are taken in decreasing ``key`` (ties: cheaper contact first, then table order); a row is
    skipped if it is not allowed, its customer has reached ``max_per_customer``, its channel is at
    capacity or it conflicts with a contact already chosen; the first row whose cost no longer
    fits in the budget ends the plan. Unlike :func:`optimise`, rows with a negative net value are
    contacted if their key ranks them high: that is what targeting by response does. Pass
    ``budget=plan.cost`` to compare with an optimised plan at equal cost.
    """
    started = time.perf_counter()
    allowed = candidates["allowed"].fillna(False).to_numpy(bool)
    p = _Problem(candidates, budget, capacity or {}, max_per_customer, conflicts, allowed)
    if p.n == 0 or p.k <= 0:
        return _empty_plan(candidates, f"greedy:{key}", started, np.nan)
    score = candidates[key].to_numpy(float)[p.rows]
    order = np.lexsort((np.arange(p.n), p.cost, -np.nan_to_num(score, nan=-np.inf)))
    sel = _fill(p, np.empty(0, np.int64), order, stop_at_budget=True)
    plan = _plan(p, sel, np.nan, f"greedy:{key}", started, {})
    plan.gap = np.nan
    return plan


def violations(plan: Plan | pd.DataFrame, budget: float, capacity: dict[str, int] | None = None,
               max_per_customer: int = 1, conflicts=CONFLICTS) -> list[str]:
    """The rules a plan breaks (empty list when it keeps them all): consent, budget, capacities, limit, conflicts."""
    chosen = plan.chosen if isinstance(plan, Plan) else plan
    out = [] if chosen["allowed"].fillna(False).all() else ["consent"]
    p = _Problem(chosen, budget, capacity or {}, max_per_customer, conflicts, np.ones(len(chosen), bool))
    return out + p.violations(np.arange(p.n))


def compare(plans: dict[str, Plan]) -> pd.DataFrame:
    """Plans side by side: contacts (all and by channel), cost, expected incremental margin, net.

    One row per plan (index: the dict's names); ``sleeping_dogs`` counts contacts whose uplift is
    negative (customers the contact makes less likely to buy).
    """
    rows = {}
    for name, plan in plans.items():
        c = plan.chosen
        row = {"contacts": len(c)}
        row |= {f"{ch}_contacts": int((c["channel"] == ch).sum()) for ch in _channels(plans)}
        row |= {"cost": float(c["cost"].sum()), "expected_margin": float(c["expected_margin"].sum()),
                "net_margin": float((c["expected_margin"] - c["cost"]).sum()),
                "sleeping_dogs": int((c["uplift"] < 0).sum()) if "uplift" in c else 0}
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("plan")


def _channels(plans: dict[str, Plan]) -> list[str]:
    seen = {ch for plan in plans.values() for ch in plan.chosen["channel"].unique()}
    return [c for c in CHANNELS if c in seen] + sorted(seen - set(CHANNELS))


def plot_compare(table: pd.DataFrame, ax=None):
    """Bar chart of each plan's expected net margin (from :func:`compare`), each bar labelled with its
    amount; the title names the best plan and its lead over the runner-up. Returns ``ax``."""
    import matplotlib.pyplot as plt

    from crm_helpers import display, plots

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.8 + 0.6 * len(table)))
    data = table["net_margin"].sort_values(ascending=False)
    bars = ax.barh([str(i) for i in data.index], data.to_numpy(), color=["C0"] + ["C7"] * (len(data) - 1))
    ax.bar_label(bars, labels=[display.fmt(v, "money", 0) for v in data], padding=3)
    ax.invert_yaxis()
    ax.set_xlim(min(0.0, float(data.min()) * 1.2), max(0.0, float(data.max())) * 1.2)
    best = str(data.index[0])
    title = f"{best[:1].upper()}{best[1:]} earns the most"
    if len(data) > 1:
        lead = display.fmt(data.iloc[0] - data.iloc[1], "money")
        title = f"{best[:1].upper()}{best[1:]} earns {lead} more than {data.index[1]}"
    plots.finish(ax, title, x="expected net margin", xunit="money")
    return ax


# ---------------------------------------------------------------------------------------------
# Synthetic candidates (tests and benchmarks)


def synthetic_candidates(n_customers: int, seed: int = 0, consent: float = 0.6,
                         costs: dict[str, float] | None = None) -> pd.DataFrame:
    """A realistic candidate table for ``n_customers`` x 3 channels x 4 offers, for tests and benchmarks.

    Margins are skewed (log-normal, a few big customers); uplift depends on the customer and the
    channel (calls lift most, then SMS, then e-mail) and is negative for about one row in ten
    ("sleeping dogs", who often have a high response probability); each channel has ~``consent``
    opt-in (calls share the SMS opt-in) and 3% of customers are on do-not-contact. Not every
    offer applies to every customer (win-back only to lapsed ones, retention only to active ones).
    """
    rng = np.random.default_rng(seed)
    costs = costs or CONTACT_COSTS
    n = n_customers
    value = rng.lognormal(mean=3.2, sigma=0.9, size=n)  # margin if they buy: median ~25
    responsive = rng.beta(2, 8, size=n)  # baseline purchase propensity
    lapsed = rng.random(n) < 0.25
    email_ok, sms_ok = rng.random(n) < consent, rng.random(n) < consent
    dnc = rng.random(n) < 0.03
    channel_lift = {"email": 0.02, "sms": 0.035, "call": 0.12}
    offer_lift = {"cross_sell": 1.0, "up_sell": 0.8, "retention": 1.2, "win_back": 1.5}
    frames = []
    for offer in OFFERS:
        applies = ~lapsed if offer == "retention" else lapsed if offer == "win_back" else rng.random(n) < 0.8
        for ch in CHANNELS:
            who = np.flatnonzero(applies)
            persuadable = rng.normal(1.0, 0.8, size=who.size)  # < 0: a sleeping dog
            uplift = channel_lift[ch] * offer_lift[offer] * persuadable * rng.lognormal(0, 0.3, who.size)
            p_resp = np.clip(responsive[who] + 0.15 * (persuadable < 0) + np.maximum(uplift, 0), 0, 1)
            ok = (email_ok if ch == "email" else sms_ok)[who] & ~dnc[who]
            frames.append(pd.DataFrame({
                "customer_id": who.astype(np.int64) + 1, "channel": ch, "offer": offer,
                "uplift": uplift, "p_response": p_resp, "value": value[who], "cost": costs[ch], "allowed": ok}))
    out = pd.concat(frames, ignore_index=True)
    out["expected_margin"] = out["uplift"] * out["value"]
    cols = ["customer_id", "channel", "offer", "uplift", "p_response", "value", "expected_margin", "cost", "allowed"]
    return out[cols].sort_values(["customer_id", "offer", "channel"], ignore_index=True)


def synthetic_limits(candidates: pd.DataFrame, budget_share: float = 1.2,
                     call_share: float = 0.05) -> tuple[float, dict]:
    """A binding budget and call capacity for a candidate table: shares of what the unconstrained plan would use.

    Each customer's single best positive row is what an unconstrained plan contacts; the call
    capacity is ``call_share`` of the customers whose best row is a call, and the budget
    ``budget_share`` of what the other best rows and the capacity's calls would cost.
    """
    net = net_value(candidates)
    ok = candidates[_eligible(candidates)]
    best = ok.loc[net[ok.index].groupby(ok["customer_id"]).idxmax()]
    is_call = best["channel"] == "call"
    calls = max(1, int(call_share * is_call.sum()))
    call_cost = float(best.loc[is_call, "cost"].mean()) if is_call.any() else 0.0
    budget = budget_share * (float(best.loc[~is_call, "cost"].sum()) + calls * call_cost)
    return budget, {"call": calls}
