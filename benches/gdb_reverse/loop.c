/* The program benches/gdb_reverse.rs replays under gdb: `f` is called at the start, a
 * little before the end and at the end, with a compute loop of N rounds (argv[1])
 * between. Built with -O1 -static. */
#include <stdlib.h>

volatile long x;

__attribute__((noinline)) void f(long v) {
    x = v;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    long acc = 1;
    f(1);
    for (long i = 0; i < n; i++) {
        acc += i ^ (acc >> 3);
        if (i == n - 1000) {
            f(2);
        }
    }
    f(3);
    return (int)(acc & 1);
}
