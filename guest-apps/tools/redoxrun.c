// redoxrun: runs Warden guest binaries (classic Redox x86-64 ABI) natively on x86-64 Linux by
// translating each system call with ptrace. A development aid for the guest side, independent
// of the emulator and the guest kernel: the same binaries can be run here and under `warden`
// and the results compared. Not built by cargo.
//
//   cc -O1 -o /tmp/redoxrun guest-apps/tools/redoxrun.c
//   mkdir /tmp/root && tar xf $OUT_DIR/default-image.tar -C /tmp/root
//   /tmp/redoxrun /tmp/root /bin/selftest        # REDOXRUN_VERBOSE=1 traces every call
//
// How: at each syscall-entry stop (either gate: `syscall` or `int 0x80`, told apart by the
// instruction bytes before rip) the guest call is cancelled (orig_rax = -1); at its exit stop
// the tracer performs the Linux equivalent(s) by re-pointing rip at the gate instruction with
// a Linux number and arguments ("injection"; an `int 0x80` is patched to `syscall` for the
// duration), then restores the guest's registers with the result in rax. Paths are mapped
// into ROOT ("file:" stripped; null:, zero:, rand:, proc: go to /dev and /proc); a 1 MiB
// scratch map in each tracee holds NUL-terminated copies and converted structs. clone(0) is
// fork (the child's registers are fixed up from the parent's saved state), fexec is
// execveat(AT_EMPTY_PATH), directory reads are getdents64 turned into '\n'-separated names.
// Limitations: no CLONE_VM, signals and SUPERVISE are not translated, single-threaded guests.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <limits.h>
#include <unistd.h>

#define MAXT 256
#define SCRATCH_SIZE (1 << 20)

typedef struct {
  pid_t pid;
  int used, started, in_call, injecting, inj_phase, gate; // gate 0 syscall, 1 int80
  struct user_regs_struct saved;
  long nr, a[6];
  int step;
  long prev;
  unsigned long scratch;
  unsigned long poke_addr;
  long poke_orig;
  int poked;
  int is_exec;
  int need_fixup; // forked child: registers to fix up at its first stop
} T;

static T ts[MAXT];
static char ROOT[PATH_MAX];
static int verbose;

static T *find(pid_t pid) {
  for (int i = 0; i < MAXT; i++)
    if (ts[i].used && ts[i].pid == pid) return &ts[i];
  return NULL;
}
static T *add(pid_t pid) {
  for (int i = 0; i < MAXT; i++)
    if (!ts[i].used) {
      memset(&ts[i], 0, sizeof ts[i]);
      ts[i].used = 1;
      ts[i].pid = pid;
      return &ts[i];
    }
  fprintf(stderr, "redoxrun: too many tracees\n");
  exit(125);
}

static int rd(pid_t pid, unsigned long addr, void *buf, size_t len) {
  struct iovec l = {buf, len}, r = {(void *)addr, len};
  return process_vm_readv(pid, &l, 1, &r, 1, 0) == (ssize_t)len ? 0 : -1;
}
static int wr(pid_t pid, unsigned long addr, const void *buf, size_t len) {
  struct iovec l = {(void *)buf, len}, r = {(void *)addr, len};
  return process_vm_writev(pid, &l, 1, &r, 1, 0) == (ssize_t)len ? 0 : -1;
}

// Redox open flags -> Linux
static long map_oflags(long f) {
  long acc = (f >> 16) & 3, out = 0;
  if (acc == 1) out = O_RDONLY;
  else if (acc == 2) out = O_WRONLY;
  else if (acc == 3) out = O_RDWR;
  if (f & 0x00040000) out |= O_NONBLOCK;
  if (f & 0x00080000) out |= O_APPEND;
  if (f & 0x01000000) out |= O_CLOEXEC;
  if (f & 0x02000000) out |= O_CREAT;
  if (f & 0x04000000) out |= O_TRUNC;
  if (f & 0x08000000) out |= O_EXCL;
  if (f & 0x10000000) out |= O_DIRECTORY;
  if (f & 0x20000000) out = O_PATH | (out & O_CLOEXEC);
  if (f & 0x80000000UL) out |= O_NOFOLLOW;
  return out;
}
static long map_prot(long p) {
  return ((p & 0x40000) ? 1 : 0) | ((p & 0x20000) ? 2 : 0) | ((p & 0x10000) ? 4 : 0);
}

// guest path (ptr,len) -> host path
static int guest_path(T *t, unsigned long ptr, unsigned long len, char *out) {
  char p[2048];
  if (len >= sizeof p - 1) return -ENAMETOOLONG;
  if (rd(t->pid, ptr, p, len)) return -EFAULT;
  p[len] = 0;
  char *s = p;
  if (!strncmp(s, "file:", 5)) s += 5;
  if (!strcmp(s, "null:")) return strcpy(out, "/dev/null"), 0;
  if (!strcmp(s, "zero:")) return strcpy(out, "/dev/zero"), 0;
  if (!strcmp(s, "rand:")) return strcpy(out, "/dev/urandom"), 0;
  if (!strncmp(s, "proc:", 5)) return snprintf(out, 4096, "/proc/%s", s + 5), 0;
  if (strchr(s, ':') && !strchr(s, '/')) return -ENOENT;
  if (s[0] == '/') snprintf(out, 8192, "%s%s", ROOT, s);
  else strcpy(out, s);
  return 0;
}
static void strip_root(char *s) {
  size_t n = strlen(ROOT);
  if (!strncmp(s, ROOT, n) && (s[n] == '/' || s[n] == 0)) {
    memmove(s, s + n, strlen(s + n) + 1);
    if (!s[0]) strcpy(s, "/");
  }
}

#define INJ(n, ...) do { long _a[6] = {__VA_ARGS__}; *nr = (n); memcpy(args, _a, sizeof _a); return 1; } while (0)
#define DONE(v) do { *result = (v); return 0; } while (0)

// returns 1 to inject (nr,args), 0 when done (result)
static int handle(T *t, long *nr, long *args, long *result) {
  long *a = t->a;
  long prev = t->prev;
  unsigned long S = t->scratch;
  char path[8192];
  int e;
  switch (t->nr) {
  case 0x10100005: { // open
    if (t->step == 0) {
      if ((e = guest_path(t, a[0], a[1], path))) DONE(e);
      wr(t->pid, S, path, strlen(path) + 1);
      long f = a[2];
      if ((f & 0x02000000) && (f & 0x10000000)) { t->step = 10; INJ(SYS_mkdir, S, f & 0xffff); }
      t->step = 1;
      INJ(SYS_open, S, map_oflags(f), f & 0xffff);
    }
    if (t->step == 10) {
      if (prev < 0 && !(prev == -EEXIST && !(a[2] & 0x08000000))) DONE(prev);
      t->step = 1;
      INJ(SYS_open, S, O_RDONLY | O_DIRECTORY | (map_oflags(a[2]) & O_CLOEXEC));
    }
    DONE(prev);
  }
  case 0x20000006: if (t->step == 0) { t->step = 1; INJ(SYS_close, a[0]); } DONE(prev);
  case 0x22000003: // read
    if (t->step == 0) { t->step = 1; INJ(SYS_read, a[0], a[1], a[2]); }
    if (t->step == 1) {
      if (prev != -EISDIR && prev != -EINVAL) DONE(prev);
      t->step = 2;
      INJ(SYS_getdents64, a[0], S, a[2] < SCRATCH_SIZE ? a[2] : SCRATCH_SIZE);
    }
    if (prev <= 0) DONE(prev);
    {
      char *buf = malloc(prev), *out = malloc(prev);
      rd(t->pid, S, buf, prev);
      long o = 0;
      for (long off = 0; off < prev;) {
        unsigned short reclen = *(unsigned short *)(buf + off + 16);
        char *name = buf + off + 19;
        if (strcmp(name, ".") && strcmp(name, "..")) {
          size_t n = strlen(name);
          memcpy(out + o, name, n);
          out[o + n] = '\n';
          o += n + 1;
        }
        off += reclen;
      }
      wr(t->pid, a[1], out, o);
      free(buf);
      free(out);
      if (o == 0) { t->step = 1; prev = -EISDIR; t->prev = prev; return handle(t, nr, args, result); }
      DONE(o);
    }
  case 0x21000004: if (t->step == 0) { t->step = 1; INJ(SYS_write, a[0], a[1], a[2]); } DONE(prev);
  case 0x20000013: if (t->step == 0) { t->step = 1; INJ(SYS_lseek, a[0], a[1], a[2]); } DONE(prev);
  case 0x20100029: if (t->step == 0) { t->step = 1; INJ(SYS_dup, a[0]); } DONE(prev);
  case 0x2010003f: if (t->step == 0) { t->step = 1; INJ(SYS_dup2, a[0], a[1]); } DONE(prev);
  case 0x20000037: if (t->step == 0) { t->step = 1; INJ(SYS_fcntl, a[0], a[1], a[2]); } DONE(prev);
  case 0x22000000 | 928: // fpath
    if (t->step == 0) {
      snprintf(path, sizeof path, "/proc/self/fd/%ld", a[0]);
      wr(t->pid, S, path, strlen(path) + 1);
      t->step = 1;
      INJ(SYS_readlink, S, S + 8192, 4000);
    }
    if (prev < 0) DONE(prev);
    rd(t->pid, S + 8192, path, prev);
    path[prev] = 0;
    strip_root(path);
    {
      long n = strlen(path);
      if (n > a[2]) n = a[2];
      wr(t->pid, a[1], path, n);
      DONE(n);
    }
  case 0x22000000 | 28: // fstat
    if (t->step == 0) { t->step = 1; INJ(SYS_fstat, a[0], S); }
    if (prev < 0) DONE(prev);
    {
      uint64_t ls[18];
      unsigned char r[104];
      memset(r, 0, sizeof r);
      rd(t->pid, S, ls, 144);
      uint32_t mode = ((uint32_t *)ls)[6], uid = ((uint32_t *)ls)[7], gid = ((uint32_t *)ls)[8];
      uint16_t m16 = mode;
      uint32_t nlink = ls[2];
      memcpy(r + 0, &ls[0], 8);
      memcpy(r + 8, &ls[1], 8);
      memcpy(r + 16, &m16, 2);
      memcpy(r + 20, &nlink, 4);
      memcpy(r + 24, &uid, 4);
      memcpy(r + 28, &gid, 4);
      memcpy(r + 32, &ls[6], 8);
      uint32_t blksize = ls[7];
      memcpy(r + 40, &blksize, 4);
      memcpy(r + 48, &ls[8], 8);
      memcpy(r + 56, &ls[11], 8);
      uint32_t ns = ls[12];
      memcpy(r + 64, &ns, 4);
      memcpy(r + 72, &ls[9], 8);
      ns = ls[10];
      memcpy(r + 80, &ns, 4);
      memcpy(r + 88, &ls[13], 8);
      ns = ls[14];
      memcpy(r + 96, &ns, 4);
      if (a[2] < 104) DONE(-EINVAL);
      wr(t->pid, a[1], r, 104);
      DONE(0);
    }
  case 0x20000000 | 118: if (t->step == 0) { t->step = 1; INJ(SYS_fsync, a[0]); } DONE(prev);
  case 0x20000000 | 93: if (t->step == 0) { t->step = 1; INJ(SYS_ftruncate, a[0], a[1]); } DONE(prev);
  case 0x2000000b: { // fexec
    if (t->step == 0) {
      long argc = a[2], envc = a[4];
      uint64_t (*ap)[2] = calloc(argc + 1, 16), (*ep)[2] = calloc(envc + 1, 16);
      rd(t->pid, a[1], ap, argc * 16);
      rd(t->pid, a[3], ep, envc * 16);
      // layout: [ptrs argv][NULL][ptrs envp][NULL] "" strings...
      size_t nptr = argc + 1 + envc + 1;
      uint64_t *ptrs = calloc(nptr, 8);
      char *blob = calloc(1, SCRATCH_SIZE);
      size_t off = nptr * 8;
      blob[off++] = 0; // empty path at S + nptr*8
      for (long i = 0; i < argc; i++) {
        ptrs[i] = S + off;
        rd(t->pid, ap[i][0], blob + off, ap[i][1]);
        off += ap[i][1];
        blob[off++] = 0;
      }
      for (long i = 0; i < envc; i++) {
        ptrs[argc + 1 + i] = S + off;
        rd(t->pid, ep[i][0], blob + off, ep[i][1]);
        off += ep[i][1];
        blob[off++] = 0;
      }
      memcpy(blob, ptrs, nptr * 8);
      wr(t->pid, S, blob, off);
      free(ap); free(ep); free(ptrs); free(blob);
      t->step = 1;
      t->is_exec = 1;
      INJ(SYS_execveat, a[0], S + nptr * 8, S, S + (argc + 1) * 8, AT_EMPTY_PATH);
    }
    t->is_exec = 0;
    DONE(prev);
  }
  case 0x21000000 | 90: { // fmap
    if (t->step == 0) {
      uint64_t m[4];
      rd(t->pid, a[1], m, 32);
      long flags = MAP_PRIVATE;
      long fd = a[0];
      if ((unsigned long)fd == (unsigned long)-1) flags |= MAP_ANONYMOUS;
      if (m[2] & 4) flags |= MAP_FIXED;
      t->step = 1;
      INJ(SYS_mmap, m[3], m[1], map_prot(m[2]), flags, fd, m[0]);
    }
    DONE(prev);
  }
  case 0x20000000 | 91: if (t->step == 0) { t->step = 1; INJ(SYS_munmap, a[0], a[1]); } DONE(prev);
  case 125: if (t->step == 0) { t->step = 1; INJ(SYS_mprotect, a[0], a[1], map_prot(a[2])); } DONE(prev);
  case 45: if (t->step == 0) { t->step = 1; INJ(SYS_brk, a[0]); } DONE(prev);
  case 0x10000000 | 84: case 0x10000000 | 10: case 12: // rmdir unlink chdir
    if (t->step == 0) {
      if ((e = guest_path(t, a[0], a[1], path))) DONE(e);
      wr(t->pid, S, path, strlen(path) + 1);
      t->step = 1;
      INJ(t->nr == 12 ? SYS_chdir : t->nr == (0x10000000 | 84) ? SYS_rmdir : SYS_unlink, S);
    }
    DONE(prev);
  case 183: // getcwd
    if (t->step == 0) { t->step = 1; INJ(SYS_getcwd, S, 4096); }
    if (prev < 0) DONE(prev);
    rd(t->pid, S, path, prev);
    strip_root(path);
    {
      long n = strlen(path);
      if (n > a[1]) DONE(-ERANGE);
      wr(t->pid, a[0], path, n);
      DONE(n);
    }
  case 1: t->step = 1; INJ(SYS_exit_group, a[0]);
  case 7: if (t->step == 0) { t->step = 1; INJ(SYS_wait4, a[0] == 0 ? -1 : a[0], a[1], a[2], 0); } DONE(prev);
  case 37: if (t->step == 0) { t->step = 1; INJ(SYS_kill, a[0], a[1]); } DONE(prev);
  case 20: if (t->step == 0) { t->step = 1; INJ(SYS_getpid); } DONE(prev);
  case 64: if (t->step == 0) { t->step = 1; INJ(SYS_getppid); } DONE(prev);
  case 199: if (t->step == 0) { t->step = 1; INJ(SYS_getuid); } DONE(prev);
  case 200: if (t->step == 0) { t->step = 1; INJ(SYS_getgid); } DONE(prev);
  case 60: if (t->step == 0) { t->step = 1; INJ(SYS_umask, a[0]); } DONE(prev);
  case 120: if (t->step == 0) { t->step = 1; INJ(SYS_fork); } DONE(prev);
  case 162: if (t->step == 0) { t->step = 1; INJ(SYS_nanosleep, a[0], a[1]); } DONE(prev);
  case 265:
    if (t->step == 0) { t->step = 1; INJ(SYS_clock_gettime, a[0] == 1 ? 0 : a[0] == 4 ? 1 : 99, a[1]); }
    DONE(prev);
  case 158: if (t->step == 0) { t->step = 1; INJ(SYS_sched_yield); } DONE(prev);
  case 331: // pipe2
    if (t->step == 0) {
      long fl = 0;
      if (a[1] & 0x01000000) fl |= O_CLOEXEC;
      if (a[1] & 0x00040000) fl |= O_NONBLOCK;
      t->step = 1;
      INJ(SYS_pipe2, S, fl);
    }
    if (prev < 0) DONE(prev);
    {
      int fds[2];
      uint64_t out[2];
      rd(t->pid, S, fds, 8);
      out[0] = fds[0];
      out[1] = fds[1];
      wr(t->pid, a[0], out, 16);
      DONE(0);
    }
  default: DONE(-ENOSYS);
  }
}

static void resume(pid_t pid, int sig) {
  if (ptrace(PTRACE_SYSCALL, pid, 0, sig) < 0 && errno != ESRCH) perror("PTRACE_SYSCALL");
}

static void finish(T *t, long result) {
  struct user_regs_struct r = t->saved;
  r.rax = result;
  if (t->poked) {
    ptrace(PTRACE_POKETEXT, t->pid, t->poke_addr, t->poke_orig);
    t->poked = 0;
  }
  ptrace(PTRACE_SETREGS, t->pid, 0, &r);
  t->in_call = 0;
  t->injecting = 0;
  if (verbose) fprintf(stderr, "[%d] %#lx(%#lx, %#lx, %#lx) = %ld\n", t->pid, t->nr, t->a[0], t->a[1], t->a[2], result);
}

static void inject(T *t, long nr, long *args) {
  if (verbose) fprintf(stderr, "  [%d] inject %ld(%#lx, %#lx, %#lx) prev=%ld\n", t->pid, nr, args[0], args[1], args[2], t->prev);
  struct user_regs_struct r = t->saved;
  unsigned long gate_addr = t->saved.rip - 2;
  if (t->gate == 1 && !t->poked) {
    errno = 0;
    long w = ptrace(PTRACE_PEEKTEXT, t->pid, gate_addr, 0);
    t->poke_orig = w;
    t->poke_addr = gate_addr;
    long nw = (w & ~0xffffL) | 0x050f;
    ptrace(PTRACE_POKETEXT, t->pid, gate_addr, nw);
    t->poked = 1;
  }
  r.rip = gate_addr;
  r.rax = nr;
  r.orig_rax = nr;
  r.rdi = args[0];
  r.rsi = args[1];
  r.rdx = args[2];
  r.r10 = args[3];
  r.r8 = args[4];
  r.r9 = args[5];
  ptrace(PTRACE_SETREGS, t->pid, 0, &r);
  t->injecting = 1;
  t->inj_phase = 0;
}

// drive the handler after an injected call (or at the start); resumes the tracee
static void drive(T *t) {
  long nr, args[6], result;
  if (!t->scratch) {
    if (t->step != -1) {
      t->step = -1;
      long a[6] = {0, SCRATCH_SIZE, 3, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0};
      inject(t, SYS_mmap, a);
      resume(t->pid, 0);
      return;
    }
    t->scratch = t->prev;
    t->step = 0;
  }
  if (handle(t, &nr, args, &result)) {
    inject(t, nr, args);
  } else {
    finish(t, result);
  }
  resume(t->pid, 0);
}

static void fixup_child(T *c) {
  struct user_regs_struct r = c->saved;
  r.rax = 0;
  if (c->poked) ptrace(PTRACE_POKETEXT, c->pid, c->poke_addr, c->poke_orig);
  c->poked = 0;
  ptrace(PTRACE_SETREGS, c->pid, 0, &r);
  c->started = 1;
  c->need_fixup = 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: redoxrun ROOT PROGRAM [ARGS...]\n");
    return 125;
  }
  verbose = getenv("REDOXRUN_VERBOSE") != NULL;
  if (!realpath(argv[1], ROOT)) { perror(argv[1]); return 125; }
  char prog[4096];
  snprintf(prog, sizeof prog, "%s%s", ROOT, argv[2]);
  pid_t child = fork();
  if (child == 0) {
    if (chdir(ROOT)) _exit(125);
    ptrace(PTRACE_TRACEME, 0, 0, 0);
    raise(SIGSTOP);
    char *envp[] = {"PATH=/bin", "HOME=/", NULL};
    execve(prog, argv + 2, envp);
    perror("execve");
    _exit(127);
  }
  int st;
  waitpid(child, &st, 0);
  ptrace(PTRACE_SETOPTIONS, child, 0,
         PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEFORK | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL);
  T *first = add(child);
  resume(child, 0);
  int main_status = -1;
  int live = 1;
  while (live > 0) {
    pid_t pid = waitpid(-1, &st, __WALL);
    if (pid < 0) { if (errno == EINTR) continue; break; }
    T *t = find(pid);
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
      if (t == first || (t && t->pid == child)) main_status = st;
      if (t) { t->used = 0; live--; }
      continue;
    }
    if (!WIFSTOPPED(st)) continue;
    if (!t) { // new child seen before its parent's fork event: stays stopped until then
      t = add(pid);
      live++;
      continue;
    }
    int sig = WSTOPSIG(st);
    int event = st >> 16;
    if (event == PTRACE_EVENT_FORK) {
      unsigned long cpid;
      ptrace(PTRACE_GETEVENTMSG, pid, 0, &cpid);
      T *c = find(cpid);
      int first_sight = !c;
      if (!c) { c = add(cpid); live++; }
      c->saved = t->saved;
      c->poked = t->poked;
      c->poke_addr = t->poke_addr;
      c->poke_orig = t->poke_orig;
      c->scratch = t->scratch;
      if (first_sight) {
        c->need_fixup = 1; // fix up at its first stop
      } else {
        fixup_child(c);
        resume(c->pid, 0);
      }
      resume(pid, 0);
      continue;
    }
    if (event == PTRACE_EVENT_EXEC) {
      t->scratch = 0;
      t->poked = 0;
      if (!t->started) { t->started = 1; t->in_call = 2; } // the launcher's own execve
      resume(pid, 0);
      continue;
    }
    if (t->need_fixup == 1) {
      fixup_child(t);
      resume(pid, 0);
      continue;
    }
    if (sig == (SIGTRAP | 0x80)) {
      if (!t->started) { resume(pid, 0); continue; }
      unsigned char info[88];
      memset(info, 0, sizeof info);
      ptrace(0x420e, pid, sizeof info, info);
      if (info[0] == 2 && !t->in_call && !t->injecting) { resume(pid, 0); continue; } // stray exit (fork child)
      if (t->in_call == 2) { // exit of the launcher's execve
        t->in_call = 0;
        resume(pid, 0);
        continue;
      }
      if (t->injecting) {
        if (t->inj_phase == 0) { t->inj_phase = 1; resume(pid, 0); continue; }
        struct user_regs_struct r;
        ptrace(PTRACE_GETREGS, pid, 0, &r);
        t->injecting = 0;
        t->prev = r.rax;
        if (t->is_exec && (long)r.rax == 0) { // new image
          t->is_exec = 0;
          t->in_call = 0;
          t->scratch = 0;
          t->poked = 0;
          resume(pid, 0);
          continue;
        }
        drive(t);
        continue;
      }
      if (!t->in_call) { // entry of a guest call
        struct user_regs_struct r;
        ptrace(PTRACE_GETREGS, pid, 0, &r);
        errno = 0;
        long w = ptrace(PTRACE_PEEKTEXT, pid, r.rip - 2, 0);
        t->gate = ((w & 0xffff) == 0x80cd) ? 1 : 0;
        t->nr = r.orig_rax;
        if (t->gate) {
          long a[6] = {r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, 0};
          memcpy(t->a, a, sizeof a);
        } else {
          long a[6] = {r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9};
          memcpy(t->a, a, sizeof a);
        }
        t->saved = r;
        t->step = 0;
        t->in_call = 1;
        r.orig_rax = -1;
        ptrace(PTRACE_SETREGS, pid, 0, &r);
        resume(pid, 0);
        continue;
      }
      // exit stop of the skipped guest call: start translating
      drive(t);
      continue;
    }
    // signal-delivery stop: pass the signal on (the initial SIGSTOPs are swallowed)
    resume(pid, sig == SIGSTOP ? 0 : sig);
  }
  if (main_status < 0) return 125;
  if (WIFEXITED(main_status)) return WEXITSTATUS(main_status);
  return 128 + WTERMSIG(main_status);
}
