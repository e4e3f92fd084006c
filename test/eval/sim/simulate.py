#!/usr/bin/env python3
# Offline simulation of upsell.recommend_for_cart, step 3 (README, "Offline
# evaluation"): ranks every case of one dataset exported by export.sh with
# scoring variants, as recommend_for_cart does (the best 4k + 20 candidates
# by score among the cart items' pairs and the bestsellers, then stock and
# substitutes, the first 10), and prints HR@10 and MRR@10 per variant; the
# variants `cur` (the scoring before 016cd40) and `bx` (since) are also compared case by case with upsell's rank in the
# database (`agree`), and the database's baselines are printed alongside.
#   simulate.py ev_groceries cur,ex0.5,lam3 [max cases]
# Variants (names prefixed "all" use every training pair instead of the
# serving pair_model; PM=file picks another pair file):
#   cur     before issue 15 part 3: pairs t/(n_c+w_c) summed, prior
#           mean_c w_c/(n_c+w_c) P(j), w_c = min(n_c, 500)
#   exG     the pairs beyond chance weighed by G (built: G = 1 - 1/D, D from
#           dispersion.py)
#   relR    exR with the prior w_c = min(n_c, 500) / max(R, 1/2)
#   lamL    cur with w_c = L min(n_c, 500);  wA / wmA: w_c = A / min(n_c, A)
#   xaA     beyond chance (G = 1) with w_c = A (an empirical-Bayes prior)
#   nbL     shrunk naive Bayes, ln P(j) + sum_c ln(1 + t/(w_c P(j)))
#   catA    the prior's P(j) mixed (A) with mean_c P(cat j | cat c) * share
#   pwB     pairs and prior penalised by P(j)^B
# On top of the built score (beyond chance, r = 1 - 1/D, D computed here as
# dispersion.py does), issue 15's later tries (README, "What changed"):
#   bx      the built score itself (recommend_for_cart since 016cd40)
#   bxpB    bx divided by P(j)^B (RP3beta-style penalty of the candidate)
#   bxqB    bx divided by P(j)^(B r) (the penalty as strong as the shop's
#           pairs are more than chance)
#   bxidf   the cart items' pair parts weighted by ln(N/n_c), normalised to
#           mean 1 over the cart (a one-item cart scores as bx)
#   bxtdH   time decay: every training order weighs 2^(-age/H), age = the
#           order's distance from the last training order as a share of
#           the training span (the orders' position; dates where the data
#           has them, file order elsewhere); counts, n_c and N decayed
#   bxdaysH the decay by dates: an order weighs 2^(-days before the last
#           training order / H) (dates.tsv: seq and date of every order)
#   bxtpH   the decay on popularity only (the prior's P(j)); bxtcH on the
#           pairs and n_c only
#   bxcr    P(j) + r sum_c (t_cj - n_c P(j)) / (n_c + w_c): the shop's r as
#           the credibility of every item's excess (not only of its share
#           of popularity)
#   bxci    the same with each cart item's own r_c = 1 - 1/D_c, D_c its
#           pairs' dispersion around n_c P(j)
#   bxcihM  bxci where the item is in M+ orders (default 20), else rho = 1
#   bxcosL  bx + L * the cart's summed cosines t/sqrt(n_c n_j) (a blend,
#           not a rank fusion)
#   bxrrfK  reciprocal rank fusion of bx and cosine, K
#   bxsubL  bx, but categories with lift >= L on 3+ pairs go together (the
#           substitute rule relaxed; the built rule is L = 1)
#   bxsig   bx, substitutes only where the category's lift is significantly
#           below 1 (Poisson upper 95% bound of together < expected)
#   (bxsig/bxsub read cat2.tsv, bxdays dates.tsv, both written by export.sh:
#   category_model's together and expected; each order's date)
import sys, math, collections, time, os
d = sys.argv[1]
variants = sys.argv[2].split(',')
maxcases = int(sys.argv[3]) if len(sys.argv) > 3 else 0
D = os.environ.get('OUT', '/tmp/upsell-sim') + '/' + d + '/'
def rows(f):
    with open(D + f) as fh:
        for l in fh:
            yield l.rstrip('\n').split('\t')
prod = {}
for r in rows('prod.tsv'):
    prod[int(r[0])] = (int(r[1]), int(r[2]), r[3], r[4], r[5] == 't')
orders = collections.defaultdict(set)
for r in rows('train.tsv'):
    orders[int(r[0])].add(int(r[1]))
N = len(orders)
pm = collections.defaultdict(list)
for r in rows(__import__('os').environ.get('PM', 'pm.tsv')):
    pm[int(r[0])].append((int(r[1]), int(r[2])))
need_all = any(v.startswith('all') or 'ALL' in v for v in variants)
pa = collections.defaultdict(list)
if need_all:
    for r in rows('pairs.tsv'):
        pa[int(r[0])].append((int(r[1]), int(r[2])))
subcat = set()
for r in rows('cat.tsv'):
    if r[2] == 't': subcat.add((r[0], r[1]))
cases = []
for r in rows('cases.tsv'):
    cases.append((int(r[0]), [int(x) for x in r[1].split(',')], int(r[2])))
cases.sort()
# EXCEPT_OF=dir: leave out the cases (cart, hidden) of another export of the
# same dataset (a run with EVAL_CASES=0 less the 2,000 cases variants were
# chosen on: a held-out check)
if os.environ.get('EXCEPT_OF'):
    seen = set()
    with open(os.environ['EXCEPT_OF'] + '/' + d + '/cases.tsv') as fh:
        for l in fh:
            r_ = l.rstrip('\n').split('\t')
            seen.add((tuple(sorted(int(x) for x in r_[1].split(','))), int(r_[2])))
    cases = [c for c in cases if (tuple(sorted(c[1])), c[2]) not in seen]
if maxcases: cases = cases[:maxcases]
dbrank = {}
subst = {}
for r in rows('ranks.tsv'):
    dbrank[(r[0], int(r[1]))] = int(r[2])
    if r[0] == 'upsell': subst[int(r[1])] = r[3] == 't'
bylist = sorted(prod, key=lambda p: prod[p][1])
best = [p for p in bylist if prod[p][0] > 0 and prod[p][4]]
# category statistics from the training orders
catn = collections.Counter(); catpair = collections.Counter(); catsum = collections.Counter()
for p, v in prod.items():
    if v[2]: catsum[v[2]] += v[0]
hascat = any(v[2] for v in prod.values())
if hascat:
    for o, items in orders.items():
        cc = collections.Counter(prod[i][2] for i in items if i in prod and prod[i][2])
        for c in cc:
            catn[c] += 1
        for c in cc:
            for e in cc:
                if c != e or cc[c] >= 2:
                    catpair[(c, e)] += 1
# the pair dispersion D (as dispersion.py) and r = 1 - 1/D, for the bx variants
R = None
if any(v.replace('all', '').startswith('bx') for v in variants):
    Pn = {j: n / N for j, (n, *_r) in prod.items() if n > 0}
    sP2 = sum(p * p for p in Pn.values()); sP = sum(Pn.values())
    S = 0.0
    for r_ in rows('pairs.tsv'):
        c, j, t = int(r_[0]), int(r_[1]), int(r_[2])
        S += t * t - 2 * t * prod[c][0] * Pn[j]
    A_ = 0.0
    for c, p in Pn.items():
        n = prod[c][0]
        S += n * n * (sP2 - p * p)
        A_ += n * ((sP - p) - (sP2 - p * p))
    R = 1 - A_ / S
    # per cart item c: D_c = sum_j (t_cj - n_c P_j)^2 / sum_j n_c P_j (1 - P_j) (bxci)
    if any(v.replace('all', '').startswith('bxci') for v in variants):
        Sc = collections.defaultdict(float)
        for r_ in rows('pairs.tsv'):
            c, j, t = int(r_[0]), int(r_[1]), int(r_[2])
            Sc[c] += t * t - 2 * t * prod[c][0] * Pn[j]
        RC = {}
        for c, p in Pn.items():
            n = prod[c][0]
            Sc[c] += n * n * (sP2 - p * p)
            E = n * ((sP - p) - (sP2 - p * p))
            RC[c] = max(0.0, 1 - E / Sc[c]) if Sc[c] > 0 else 0.0
    print(f"{d}\tD {S / A_:.3f}\tr {R:.4f}", flush=True)
# time decay (bxtdH): weighted n_c, N and pair counts of the serving pairs
decayed = {}
dates = None
def decay(H, days=False):
    global dates
    if (H, days) in decayed: return decayed[(H, days)]
    lo, hi = min(orders), max(orders)
    if days:
        # dates.tsv (export.sh): seq, date of every order
        import datetime
        if dates is None:
            # a dataset without dates (groceries, FIMI retail): every order
            # weighs 1, as upsell without ordered_at would count them
            dates = ({int(r_[0]): datetime.date.fromisoformat(r_[1]).toordinal() for r_ in rows('dates.tsv')}
                     if os.path.exists(D + 'dates.tsv') else collections.defaultdict(int))
        last = max(dates[o] for o in orders)
    wn = collections.defaultdict(float); wt = {}
    pmset = {c: {o for o, t in l} for c, l in pm.items()}
    WN = 0.0
    for o, items in orders.items():
        w = 2 ** (-(last - dates[o]) / H) if days else 2 ** (-((hi - o) / (hi - lo)) / H)
        WN += w
        it = [i for i in items if i in prod]
        for i in it:
            wn[i] += w
            ps = pmset.get(i)
            if not ps: continue
            for j in it:
                if j != i and j in ps:
                    wt[(i, j)] = wt.get((i, j), 0.0) + w
    pmw = collections.defaultdict(list, {c: [(o, wt.get((c, o), 0.0)) for o, t in l] for c, l in pm.items()})
    decayed[(H, days)] = (wn, WN, pmw)
    return decayed[(H, days)]
cosine_of = None
def bx(name, ci, src, Nn=None, nof=None):
    """the built score: pair parts summed, the prior's weight a (README)"""
    Nn = Nn or N
    P = lambda j: (nof[j] if nof else prod[j][0]) / Nn
    w = [min(n, 500) for c, n in ci]
    u = [1.0] * len(ci)
    if name.startswith('bxidf') and ci:
        u = [math.log(N / n) for c, n in ci]
        m = sum(u) / len(u)
        u = [x / m if m > 0 else 1.0 for x in u]
    s = collections.defaultdict(float)
    if ci:
        a = sum(wi / (n + wi) for wi, (c, n) in zip(w, ci)) / len(ci)
        sn = sum(n / (n + wi) for wi, (c, n) in zip(w, ci))
        # with weights u: sum_c u_c (t - r n_c P)/(n_c + w_c) + P (mean w/(n+w) + r mean n/(n+w))
        a_u = a + R * sn / len(ci) - R * sum(ui * n / (n + wi) for ui, wi, (c, n) in zip(u, w, ci))
    else:
        a_u = 1.0
    for (c, n), wi, ui in zip(ci, w, u):
        for o, t in src[c]:
            s[o] += ui * t / (n + wi)
    return s, lambda j: a_u * P(j)

# bxsig / bxsubL: the substitute rule relaxed (cat2.tsv: category_model's
# together and expected, written by export.sh)
subcat_built = subcat
def subcat_for(v):
    name = v.replace('all', '')
    if not (name.startswith('bxsig') or name.startswith('bxsub')): return subcat_built
    out = set()
    for r_ in rows('cat2.tsv'):
        t, e = float(r_[3]), float(r_[4])
        if r_[0] != r_[1] or r_[5] != 'orders':
            if r_[2] == 't': out.add((r_[0], r_[1]))
            continue
        if name.startswith('bxsig'):
            sub = e > 0 and t + 1.96 * math.sqrt(t) + 1.92 < e   # Poisson upper 95% bound of the lift < 1
        else:
            sub = not (e > 0 and t / e >= float(name[5:]) and t >= 3)
        if sub: out.add((r_[0], r_[1]))
    return out
def is_sub(j, cart):
    pj = prod[j]
    for a in cart:
        if a == j or a not in prod: continue
        pa_ = prod[a]
        if pa_[3] and pa_[3] == pj[3]: return True
        if (pa_[2], pj[2]) in subcat: return True
    return False

def score(v, cart):
    ci = [(c, prod[c][0]) for c in cart if c in prod and prod[c][0] > 0]
    P = lambda j: prod[j][0] / N
    s = collections.defaultdict(float)
    src = pa if (v.startswith('all') or 'ALL' in v) else pm
    name = v.replace('all', '').replace('ALL', '')
    if name.startswith('bxtp'):
        wn, WN, pmw = decay(float(name[4:]))
        return bx(name, ci, src, WN, wn)
    if name.startswith('bxtc'):
        wn, WN, pmw = decay(float(name[4:]))
        return bx(name, [(c, wn[c]) for c, n in ci], pmw)
    if name.startswith('bxdays'):
        wn, WN, pmw = decay(float(name[6:]), True)
        return bx(name, [(c, wn[c]) for c, n in ci], pmw, WN, wn)
    if name.startswith('bxtd'):
        wn, WN, pmw = decay(float(name[4:]))
        ci = [(c, wn[c]) for c, n in ci]
        return bx(name, ci, pmw, WN, wn)
    if name.startswith('bxcr') or name.startswith('bxci'):
        # P(j) + sum_c rho_c (t_cj - n_c P(j)) / (n_c + w_c): every item's
        # excess over chance, weighed by a credibility rho (bxcr: the shop's
        # r; bxci: the item's own r_c from its pairs' dispersion)
        P = lambda j: prod[j][0] / N
        w = [min(n, 500) for c, n in ci]
        if name.startswith('bxcr'):
            rho = [R for c, n in ci]
        elif name.startswith('bxcih'):
            # the item's own r_c where it has M+ orders (default 20), else 1
            M = float(name[5:] or 20)
            rho = [RC.get(c, 0.0) if n >= M else 1.0 for c, n in ci]
        else:
            rho = [RC.get(c, 0.0) for c, n in ci]
        s = collections.defaultdict(float)
        for (c, n), wi, ro in zip(ci, w, rho):
            for o, t in src[c]:
                s[o] += ro * t / (n + wi)
        a = 1 - sum(ro * n / (n + wi) for (c, n), wi, ro in zip(ci, w, rho))
        return s, lambda j: a * P(j)
    if name.startswith('bx'):
        return bx(name, ci, src)
    if name in ('cur', ''):
        w = [min(n, 500) for c, n in ci]
        prior = sum(wi / (n + wi) for wi, (c, n) in zip(w, ci)) / len(ci) if ci else 1.0
        for (c, n), wi in zip(ci, w):
            for o, t in src[c]:
                s[o] += t / (n + wi)
        return s, lambda j: prior * P(j)
    if name.startswith('cat'):
        # shrink towards the category-level estimate P(cat j | cat c) * share of j in cat j
        a = float(name[3:] or 1)
        w = [min(n, 500) for c, n in ci]
        prior = sum(wi / (n + wi) for wi, (c, n) in zip(w, ci)) / len(ci) if ci else 1.0
        for (c, n), wi in zip(ci, w):
            for o, t in src[c]:
                s[o] += t / (n + wi)
        cats = [prod[c][2] for c, n in ci if prod[c][2]]
        def pri(j):
            cj = prod[j][2]
            if not cj or not cats: return prior * P(j)
            share = prod[j][0] / catsum[cj] if catsum[cj] else 0
            cp = sum(catpair[(c, cj)] / catn[c] for c in cats) / len(cats)
            return prior * ((1 - a) * P(j) + a * cp * share)
        return s, pri
    if name.startswith('lam'):
        lam = float(name[3:])
        w = [lam * min(n, 500) for c, n in ci]
        prior = sum(wi / (n + wi) for wi, (c, n) in zip(w, ci)) / len(ci) if ci else 1.0
        for (c, n), wi in zip(ci, w):
            for o, t in src[c]:
                s[o] += t / (n + wi)
        return s, lambda j: prior * P(j)
    if name.startswith('w'):
        # w_c = min(n_c, A) ('wmA') or A ('wA')
        if name.startswith('wm'):
            A = float(name[2:]); w = [min(n, A) for c, n in ci]
        else:
            A = float(name[1:]); w = [A for c, n in ci]
        prior = sum(wi / (n + wi) for wi, (c, n) in zip(w, ci)) / len(ci) if ci else 1.0
        for (c, n), wi in zip(ci, w):
            for o, t in src[c]:
                s[o] += t / (n + wi)
        return s, lambda j: prior * P(j)
    if name.startswith('ex'):
        # excess over chance: A = mean prior weight - g * (sum n/(n+w) - mean n/(n+w))
        g = float(name[2:])
        w = [min(n, 500) for c, n in ci]
        if ci:
            prior = sum(wi / (n + wi) for wi, (c, n) in zip(w, ci)) / len(ci)
            sn = sum(n / (n + wi) for wi, (c, n) in zip(w, ci))
            A = prior - g * (sn - sn / len(ci))
        else:
            A = 1.0
        for (c, n), wi in zip(ci, w):
            for o, t in src[c]:
                s[o] += t / (n + wi)
        return s, lambda j: A * P(j)
    if name.startswith('xa'):
        # full excess over chance, every item's estimate shrunk with a prior of A orders
        Aw = float(name[2:])
        w = [Aw for c, n in ci]
        A = 1 - sum(n / (n + wi) for wi, (c, n) in zip(w, ci))
        for (c, n), wi in zip(ci, w):
            for o, t in src[c]:
                s[o] += t / (n + wi)
        return s, lambda j: A * P(j)
    if name.startswith('nb'):
        # shrunk naive Bayes: ln P_j + sum_c ln(1 + t/(w_c P_j)), w_c = lam * min(n_c, 500)
        lam = float(name[2:] or 1)
        w = [lam * min(n, 500) for c, n in ci]
        for (c, n), wi in zip(ci, w):
            for o, t in src[c]:
                s[o] += math.log(1 + t / (wi * P(o)))
        return s, lambda j: math.log(P(j))
    if name.startswith('rel'):
        rho = float(name[3:])
        w = [min(n, 500) / rho for c, n in ci]
        if ci:
            prior = sum(wi / (n + wi) for wi, (c, n) in zip(w, ci)) / len(ci)
            sn = sum(n / (n + wi) for wi, (c, n) in zip(w, ci))
            A = prior - rho * (sn - sn / len(ci))
        else:
            A = 1.0
        for (c, n), wi in zip(ci, w):
            for o, t in src[c]:
                s[o] += t / (n + wi)
        return s, lambda j: A * P(j)
    if name.startswith('rf'):
        rho = float(name[2:])
        w = [min(n, 500) / max(rho, 0.5) for c, n in ci]
        if ci:
            prior = sum(wi / (n + wi) for wi, (c, n) in zip(w, ci)) / len(ci)
            sn = sum(n / (n + wi) for wi, (c, n) in zip(w, ci))
            A = prior - rho * (sn - sn / len(ci))
        else:
            A = 1.0
        for (c, n), wi in zip(ci, w):
            for o, t in src[c]:
                s[o] += t / (n + wi)
        return s, lambda j: A * P(j)
    if name.startswith('pw'):
        # pairs part penalised by candidate popularity ^ beta, scaled to keep the overall level
        b = float(name[2:])
        w = [min(n, 500) for c, n in ci]
        prior = sum(wi / (n + wi) for wi, (c, n) in zip(w, ci)) / len(ci) if ci else 1.0
        for (c, n), wi in zip(ci, w):
            for o, t in src[c]:
                s[o] += t / (n + wi) * (P(o) ** -b) 
        return s, lambda j: prior * P(j) * P(j) ** -b
    raise Exception(v)

def rank(v, cart, hidden):
    s, pri = score(v, cart)
    cs = set(cart)
    cand = {}
    for j, x in s.items():
        if j in cs: continue
        cand[j] = x + pri(j)
    lim = 4 * 10 + 20
    for j in best[:lim + len(cart)]:
        if j not in cs and j not in cand: cand[j] = pri(j)
    name = v.replace('all', '')
    P = lambda j: prod[j][0] / N
    if name.startswith('bxp') or name.startswith('bxq'):
        b = float(name[3:]) * (R if name.startswith('bxq') else 1)
        cand = {j: x / P(j) ** b for j, x in cand.items()}
    if name.startswith('bxcos') or name.startswith('bxrrf'):
        cos = collections.defaultdict(float)
        src = pa if v.startswith('all') else pm
        for c in cart:
            if c not in prod or prod[c][0] == 0: continue
            for o, t in src[c]:
                cos[o] += t / math.sqrt(prod[c][0] * prod[o][0])
        if name.startswith('bxcos'):
            L = float(name[5:])
            cand = {j: x + L * cos.get(j, 0.0) for j, x in cand.items()}
        else:
            K = float(name[5:])
            r1 = {j: i for i, (j, x) in enumerate(sorted(cand.items(), key=lambda kv: (-kv[1], kv[0])))}
            cc = {j: x for j, x in cos.items() if j not in cs}
            r2 = {j: i for i, (j, x) in enumerate(sorted(cc.items(), key=lambda kv: (-kv[1], prod[kv[0]][1])))}
            cand = {j: 1 / (K + r1[j]) + (1 / (K + r2[j]) if j in r2 else 0) for j in r1}
    top = sorted(cand.items(), key=lambda kv: (-kv[1], kv[0]))
    # like the SQL: the best 60 scored, then stock/substitutes
    if '_nolim' not in v: top = top[:lim]
    r = 0
    for j, x in top:
        if not prod[j][4] or is_sub(j, cart): continue
        r += 1
        if j == hidden: return r
        if r >= 10: break
    return -1

t0 = time.time()
# the first variant is the reference: every other line also says how many
# cases it hits that the first misses and the other way round (+g/-l; a sign
# test of a few hits is noise: McNemar's p is printed)
ref = None
for v in variants:
    subcat = subcat_for(v)
    hitset = set()
    hits = 0; agree = 0; mrr = 0
    for cid, cart, hidden in cases:
        r = rank(v, cart, hidden)
        if 0 < r <= 10: hits += 1; mrr += 1 / r; hitset.add(cid)
        if v in ('cur', 'bx'):
            dr = dbrank.get(('upsell', cid), -1)
            if (0 < dr <= 10) == (0 < r <= 10): agree += 1
    paired = ''
    if ref is None:
        ref = hitset
    else:
        g, l = len(hitset - ref), len(ref - hitset)
        # exact two-sided sign test on the discordant cases
        nn = g + l; k = min(g, l)
        p = min(1.0, 2 * sum(math.comb(nn, i) for i in range(k + 1)) / 2 ** nn) if nn else 1.0
        paired = f"\t+{g}/-{l} p={p:.2f}"
    print(f"{d}\t{v}\tHR {hits/len(cases):.4f}\t({hits}/{len(cases)})\tMRR {mrr/len(cases):.4f}" + (f"\tagree {agree}" if v in ('cur', 'bx') else '') + paired, flush=True)
ids = set(c[0] for c in cases)
for m in ['popularity', 'count', 'confidence', 'cosine', 'jaccard', 'upsell']:
    h = sum(1 for cid in ids if 0 < dbrank.get((m, cid), -1) <= 10)
    print(f"{d}\tdb:{m}\t{h/len(ids):.4f}\t({h})")
print('time', time.time() - t0)
