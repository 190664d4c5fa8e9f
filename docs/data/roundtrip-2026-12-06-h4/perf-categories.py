import re,collections,sys
blocks=open(sys.argv[1]).read().split('\n\n')
c=collections.Counter(); tot=0
for b in blocks:
    lines=[l for l in b.strip().split('\n') if l.strip()]
    if len(lines)<2: continue
    tot+=1
    syms=[l.strip().split(None,1)[1] if len(l.strip().split(None,1))>1 else '' for l in lines[1:]]
    s=' '.join(syms)
    if any('start_thread' in x for x in syms):
        k='other threads: '+('compiler (TurboFan)' if ('compiler' in s or 'Compile' in s) else 'GC helpers' if re.search('Scaveng|Mark|Sweep|Heap|GC|Evacuat|Concurrent',s) else 'other')
    elif re.search(r'ed25519|fe_mul|fe_sq|ge_|x25519|sc_reduce|sc_muladd',s,re.I): k='main: Ed25519 ('+('verify' if 'verify' in s else 'sign')+')'
    elif re.search(r'Scavenge|MarkCompact|Heap::|GCTracer|Sweeper|MinorMark|IncrementalMarking',s): k='main: GC'
    elif 'entry_SYSCALL' in s or 'do_syscall_64' in s or '[kernel.kallsyms]' in lines[1]:
        if re.search(r'sock_write_iter|ksys_write|do_writev|tcp_sendmsg',s): k='main: kernel, socket writes'
        elif re.search(r'sock_read_iter|ksys_read|tcp_recvmsg',s): k='main: kernel, socket reads'
        elif 'epoll' in s: k='main: kernel, epoll'
        else: k='main: kernel, other (interrupts, scheduling, other syscalls)'
    elif re.search(r'libcrypto|libssl|SSL_|ssl3_|tls13|EVP_|aes|gcm|sha256_block|SHA256',s): k='main: OpenSSL (TLS records, SHA-256, HMAC)'
    else: k='main: JavaScript and V8 runtime'
    c[k]+=1
print('samples',tot)
for k,v in c.most_common(): print(f'{100*v/tot:5.1f}% {k}')
