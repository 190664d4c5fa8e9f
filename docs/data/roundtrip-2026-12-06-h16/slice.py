import json,sys,collections
# usage: slice.py profile t0_rel_s t1_rel_s  (seconds since profile start)   -> top self and inclusive
p=json.load(open(sys.argv[1])); t0=float(sys.argv[2])*1e6; t1=float(sys.argv[3])*1e6
nodes={n['id']:n for n in p['nodes']}
parent={}
for n in p['nodes']:
  for c in n.get('children',[]): parent[c]=n['id']
t=0; selfc=collections.Counter(); incl=collections.Counter(); total=0
for s,d in zip(p['samples'],p['timeDeltas']):
  t+=d
  if t<t0 or t>t1: continue
  total+=d
  n=nodes[s]; cf=n['callFrame']
  key=lambda cf:"%s %s:%d"%(cf['functionName'] or '(anon)',cf['url'].split('/')[-1],cf['lineNumber']+1)
  selfc[key(cf)]+=d
  seen=set(); x=s
  while x is not None:
    k=key(nodes[x]['callFrame'])
    if k not in seen: incl[k]+=d; seen.add(k)
    x=parent.get(x)
print('samples',total)
N=int(sys.argv[4]) if len(sys.argv)>4 else 40
print('--- self'); [print(v,k) for k,v in selfc.most_common(N)]
print('--- inclusive'); [print(v,k) for k,v in incl.most_common(N)]
