import json,sys,collections
p=json.load(open(sys.argv[1])); nd=int(sys.argv[2])
wins=[('idle',59,63),('r10',65,82),('r80',85,102)]
nodes={n['id']:n for n in p['nodes']}; parent={}
for n in p['nodes']:
  for c in n.get('children',[]): parent[c]=n['id']
key=lambda cf:"%s %s:%d"%(cf['functionName'] or '(anon)',cf['url'].split('/')[-1],cf['lineNumber']+1)
memo={}
def lab(s):
  if s in memo: return memo[s]
  st=[]; x=s
  while x is not None:
    cf=nodes[x]['callFrame']
    if cf['url'].startswith('file') and 'node_modules' not in cf['url']: st.append(key(cf))
    x=parent.get(x)
  r=' < '.join(st[-nd:][::-1]) or '(none) '+key(nodes[s]['callFrame']); memo[s]=r; return r
res={}
t=0
cs={w[0]:collections.Counter() for w in wins}
for s,d in zip(p['samples'],p['timeDeltas']):
  t+=d
  if nodes[s]['callFrame']['functionName']=='(idle)': continue
  for name,a,b in wins:
    if a*1e6<=t<=b*1e6: cs[name][lab(s)]+=d/((b-a)*1000)
allk=collections.Counter()
for c in cs.values(): allk.update(c)
print('ms per second of wall: idle | 10/s | 80/s   ; totals', ['%.1f'%sum(c.values()) for c in cs.values()])
for k,_ in allk.most_common(int(sys.argv[3])): print(' | '.join('%6.1f'%cs[n][k] for n in cs), k)
