/* The workloads of the comparison bench (benches/compare.rs): one static
 * program, run natively, under warden and under qemu-x86_64 with the same
 * arguments. Usage: work NAME SCALE. Each workload prints one line with a
 * checksum, so the runs can be checked against each other.
 *
 *   nop      start up and exit (fixed costs: loading, libc start-up)
 *   int      integer/memory/branch loop (a sieve and a data-dependent walk)
 *   sha256   SHA-256 over a SCALE MiB buffer
 *   mem      memcpy/memset over 64 KiB blocks (libc's string functions)
 *   fp       scalar double arithmetic (a Newton iteration and a series)
 *   syscall  SCALE getppid system calls
 *   spawn    SCALE times fork, _exit in the child, waitpid in the parent
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t int_loop(long scale) {
    enum { N = 1 << 16 };
    static uint8_t composite[N];
    static uint32_t next[N];
    uint64_t sum = 0;
    for (long round = 0; round < scale; round++) {
        memset(composite, 0, sizeof composite);
        for (uint32_t i = 2; i < N; i++) {
            if (composite[i]) continue;
            sum += i;
            for (uint32_t j = i * 2; j < N; j += i) composite[j] = 1;
        }
        uint32_t x = (uint32_t)round * 2654435761u + 1;
        for (uint32_t i = 0; i < N; i++) {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            next[i] = x & (N - 1);
        }
        uint32_t at = 0;
        for (uint32_t i = 0; i < N; i++) {
            at = next[at];
            if (at & 1) sum += at; else sum ^= at;
        }
    }
    return sum;
}

static const uint32_t K[64] = {
    0x428a2f98,0x71374491,0xb5c0fbcf,0xe9b5dba5,0x3956c25b,0x59f111f1,0x923f82a4,0xab1c5ed5,
    0xd807aa98,0x12835b01,0x243185be,0x550c7dc3,0x72be5d74,0x80deb1fe,0x9bdc06a7,0xc19bf174,
    0xe49b69c1,0xefbe4786,0x0fc19dc6,0x240ca1cc,0x2de92c6f,0x4a7484aa,0x5cb0a9dc,0x76f988da,
    0x983e5152,0xa831c66d,0xb00327c8,0xbf597fc7,0xc6e00bf3,0xd5a79147,0x06ca6351,0x14292967,
    0x27b70a85,0x2e1b2138,0x4d2c6dfc,0x53380d13,0x650a7354,0x766a0abb,0x81c2c92e,0x92722c85,
    0xa2bfe8a1,0xa81a664b,0xc24b8b70,0xc76c51a3,0xd192e819,0xd6990624,0xf40e3585,0x106aa070,
    0x19a4c116,0x1e376c08,0x2748774c,0x34b0bcb5,0x391c0cb3,0x4ed8aa4a,0x5b9cca4f,0x682e6ff3,
    0x748f82ee,0x78a5636f,0x84c87814,0x8cc70208,0x90befffa,0xa4506ceb,0xbef9a3f7,0xc67178f2};
#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4*i] << 24 | (uint32_t)p[4*i+1] << 16 | (uint32_t)p[4*i+2] << 8 | p[4*i+3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i-15], 7) ^ ROR(w[i-15], 18) ^ (w[i-15] >> 3);
        uint32_t s1 = ROR(w[i-2], 17) ^ ROR(w[i-2], 19) ^ (w[i-2] >> 10);
        w[i] = w[i-16] + s0 + w[i-7] + s1;
    }
    uint32_t a=h[0],b=h[1],c=h[2],d=h[3],e=h[4],f=h[5],g=h[6],hh=h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ROR(e,6) ^ ROR(e,11) ^ ROR(e,25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ROR(a,2) ^ ROR(a,13) ^ ROR(a,22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh=g; g=f; f=e; e=d+t1; d=c; c=b; b=a; a=t1+t2;
    }
    h[0]+=a; h[1]+=b; h[2]+=c; h[3]+=d; h[4]+=e; h[5]+=f; h[6]+=g; h[7]+=hh;
}

static uint64_t sha256_work(long scale) {
    size_t len = (size_t)scale << 20;
    uint8_t *buf = malloc(len);
    if (!buf) return 0;
    uint32_t x = 12345;
    for (size_t i = 0; i < len; i++) { x = x * 1103515245u + 12345u; buf[i] = x >> 24; }
    uint32_t h[8] = {0x6a09e667,0xbb67ae85,0x3c6ef372,0xa54ff53a,0x510e527f,0x9b05688c,0x1f83d9ab,0x5be0cd19};
    for (size_t at = 0; at + 64 <= len; at += 64) sha256_block(h, buf + at);
    free(buf);
    return (uint64_t)h[0] << 32 | h[7];
}

static uint64_t mem_work(long scale) {
    enum { BLOCK = 64 << 10 };
    char *a = malloc(BLOCK), *b = malloc(BLOCK);
    if (!a || !b) return 0;
    uint64_t sum = 0;
    for (long i = 0; i < scale * 64; i++) {
        memset(a, (int)(i & 0xff), BLOCK);
        memcpy(b, a, BLOCK);
        memmove(b + 1, b, BLOCK - 1);
        sum += (unsigned char)b[i % BLOCK] + (unsigned char)b[BLOCK - 1];
        sum += memcmp(a, b, BLOCK) < 0;
    }
    free(a);
    free(b);
    return sum;
}

static double fp_work(long scale) {
    double acc = 0;
    for (long i = 1; i <= scale * 100000; i++) {
        double x = (double)i;
        double r = x;                       /* Newton's square root */
        for (int k = 0; k < 6; k++) r = 0.5 * (r + x / r);
        acc += r / (x + 1.0) - 1.0 / (x * x + 0.5);
        acc *= 0.999999;
    }
    return acc;
}

static uint64_t syscall_work(long scale) {
    uint64_t sum = 0;
    for (long i = 0; i < scale; i++) sum += syscall(SYS_getppid) >= 0;
    return sum;
}

static uint64_t spawn_work(long scale) {
    uint64_t sum = 0;
    for (long i = 0; i < scale; i++) {
        pid_t pid = fork();
        if (pid < 0) return (uint64_t)-1;
        if (pid == 0) _exit((int)(i & 7));
        int status = 0;
        if (waitpid(pid, &status, 0) != pid) return (uint64_t)-2;
        sum += WEXITSTATUS(status);
    }
    return sum;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: work nop|int|sha256|mem|fp|syscall|spawn SCALE\n");
        return 2;
    }
    const char *w = argv[1];
    long scale = atol(argv[2]);
    if (!strcmp(w, "nop")) printf("nop\n");
    else if (!strcmp(w, "int")) printf("int %llu\n", (unsigned long long)int_loop(scale));
    else if (!strcmp(w, "sha256")) printf("sha256 %016llx\n", (unsigned long long)sha256_work(scale));
    else if (!strcmp(w, "mem")) printf("mem %llu\n", (unsigned long long)mem_work(scale));
    else if (!strcmp(w, "fp")) printf("fp %.9f\n", fp_work(scale));
    else if (!strcmp(w, "syscall")) printf("syscall %llu\n", (unsigned long long)syscall_work(scale));
    else if (!strcmp(w, "spawn")) printf("spawn %llu\n", (unsigned long long)spawn_work(scale));
    else { fprintf(stderr, "unknown workload %s\n", w); return 2; }
    return 0;
}
