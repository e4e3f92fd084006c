#!/usr/bin/env python3
# The pair dispersion D of one dataset exported by export.sh (README,
# "Offline evaluation"; cooccurrence_model.pair_dispersion computes the same
# in refresh), and the beta-binomial prior alpha by moments.
#   dispersion.py ev_groceries [pair file, default pairs.tsv]
import sys, collections, math, os
d=sys.argv[1]; D=os.environ.get('OUT', '/tmp/upsell-sim')+'/'+d+'/'
prod={}
for l in open(D+'prod.tsv'):
    a=l.split('\t'); 
    if int(a[1])>0: prod[int(a[0])]=int(a[1])
orders=set(l.split('\t')[0] for l in open(D+'train.tsv')); N=len(orders)
P={j:n/N for j,n in prod.items()}
sP2=sum(p*p for p in P.values()); sP=sum(P.values())
# S = sum_{c,j!=c} (t - n_c P_j)^2 ; E[S] = sum_c n_c sum_j P_j(1-P_j) (a+n_c)/(a+1)
S=0.0
for l in open(D+(sys.argv[2] if len(sys.argv)>2 else "pairs.tsv")):
    c,j,t=l.split('\t'); c=int(c); j=int(j); t=int(t)
    e=prod[c]*P[j]
    S+=t*t-2*t*e
for c,n in prod.items():
    S+=n*n*(sP2-P[c]**2)
# expected under binomial (a=inf): B=sum_c n_c sum_j P_j(1-P_j) ; extra term: sum_c n_c^2 ... 
A=0.0; Bq=0.0
for c,n in prod.items():
    v=(sP-P[c])-(sP2-P[c]**2)
    A+=n*v; Bq+=n*n*v
# S = (a*A + Bq)/(a+1)  -> a = (Bq - S)/(S - A)
a=(Bq-S)/(S-A)
print(d, 'N',N,'products',len(prod),'S/A (dispersion)',round(S/A,3),'alpha',round(a,1), 'median n', sorted(prod.values())[len(prod)//2])
