import sys,bisect
rows=[]
for l in open('/tmp/h16/proc2.txt'):
  f=l.split()
  try: rows.append([float(f[0])]+[int(x) for x in f[1:9]]+[int(f[10]),int(f[11]),int(f[13]),int(f[14])])
  except: pass
ev={}
for l in open('/tmp/h16/stderr2.txt'):
  ts,rest=l.split(' ',1)
  if rest.startswith('ladder: idle'): ev['idle']=(float(ts)-5,float(ts))
  if rest.startswith('ladder: 10/s'): ev['10/s']=(float(ts)-20,float(ts))
  if rest.startswith('ladder: 80/s'): ev['80/s']=(float(ts)-20,float(ts))
ts=[r[0] for r in rows]
def at(t): return rows[min(range(len(rows)),key=lambda i:abs(ts[i]-t))]
names='proc_utime proc_stime main_utime main_stime syscr syscw ctxt_vol ctxt_nonvol mysqld_u mysqld_s redis_u redis_s'.split()
ncmd={'idle':None,'10/s':200,'80/s':1600}
for k,(a,b) in ev.items():
  A=at(a+0.5);B=at(b-0.5); dt=B[0]-A[0]
  d=[B[i]-A[i] for i in range(1,13)]
  print(k,'window %.1fs'%dt)
  for n,v in zip(names,d):
    per_s=v/dt; ms=('ms' if 'time' in n or n.startswith(('mysqld','redis')) else '')
    val=per_s*10 if ms else per_s
    line='  %-12s %8.1f %s/s'%(n,val,'ms' if ms else '')
    if ncmd[k]: line+='   per command %.2f'%(val/(ncmd[k]/20))
    print(line)
