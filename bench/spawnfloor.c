/*
 * The floor of case (b) of rolling.py without Python: start 20 batches of 50
 * `sleep 0.2` processes with posix_spawn() and wait for each batch, from one thread
 * or from two threads that share each batch. Prints the total time against the
 * critical path of 4 s and the mean time to start a batch.
 *
 *     gcc -O2 -pthread -o /tmp/spawnfloor bench/spawnfloor.c && /tmp/spawnfloor 1
 */
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

#define BATCHES 20
#define BATCH 50

extern char **environ;

static char *argv_sleep[] = {"sleep", "0.2", NULL};
static pid_t pids[BATCH];
static int spawners = 1;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Start every spawners-th process of the batch, beginning at index *first. */
static void *spawn_share(void *first) {
    for (long i = *(long *)first; i < BATCH; i += spawners) {
        if (posix_spawnp(&pids[i], argv_sleep[0], NULL, NULL, argv_sleep, environ) != 0) {
            perror("posix_spawnp");
            exit(1);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    spawners = argc > 1 ? atoi(argv[1]) : 1;
    if (spawners != 1 && spawners != 2) {
        fprintf(stderr, "usage: %s [1|2]  (threads that start the processes)\n", argv[0]);
        return 2;
    }

    double started = now(), starting = 0;
    for (int batch = 0; batch < BATCHES; batch++) {
        double batch_start = now();
        pthread_t threads[2];
        long firsts[2] = {0, 1};
        for (int t = 0; t < spawners; t++)
            pthread_create(&threads[t], NULL, spawn_share, &firsts[t]);
        for (int t = 0; t < spawners; t++)
            pthread_join(threads[t], NULL);
        starting += now() - batch_start;

        for (int i = 0; i < BATCH; i++)
            waitpid(pids[i], NULL, 0);
    }

    double total = now() - started;
    printf("%d thread(s): %.3f s, %.3fx the critical path; starting a batch of %d took "
           "%.1f ms\n", spawners, total, total / (BATCHES * 0.2), BATCH,
           starting / BATCHES * 1000);
    return 0;
}
