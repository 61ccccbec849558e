/*
 * nfq-delay: holds every packet of one NFQUEUE queue for a fixed time, then
 * accepts it. The delay between Cassandra nodes of the local cluster
 * (src/fault/cluster.rs): this kernel has no `tc netem` and nft's own `queue`
 * statement is missing, but iptables' NFQUEUE target works, so a delay is an
 * iptables rule sending the packets to this program.
 *
 *   nfq-delay --queue N --delay-ms D
 *
 * Prints "ready queue=N delay_ms=D" once the queue is bound (the caller waits
 * for it), and counters when it exits. SIGTERM/SIGINT: every held packet is
 * accepted at once, then it exits 0 (no packet is dropped by stopping it).
 *
 * Why a fixed delay and a FIFO: packets leave in the order they came, so TCP
 * sees latency, not reordering. Why fail-open and a large queue: when the queue
 * is full the kernel accepts instead of dropping, so a delay never turns into
 * loss by accident. Only the packet id is copied to user space (COPY_META).
 *
 * Built by `scripts/stack install --only cassandra-cluster`:
 *   gcc -O2 -Wall -o nfq-delay nfq-delay.c -lnetfilter_queue -lnfnetlink
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <libnfnetlink/libnfnetlink.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CAPACITY (1u << 17) /* packets held at once; beyond that: accepted at once */
#define QUEUE_MAXLEN 100000 /* the kernel's own limit on queued packets */

struct held {
    uint32_t id;
    int64_t due_ns;
};

static struct held ring[CAPACITY];
static uint32_t head, tail; /* ring[head..tail) are held, oldest first */
static int64_t delay_ns;
static volatile sig_atomic_t stopping;
static uint64_t n_held, n_overflow, n_max_held;

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *data) {
    (void)msg;
    (void)data;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    if (!ph)
        return 0;
    uint32_t id = ntohl(ph->packet_id);
    if (tail - head >= CAPACITY) {
        n_overflow++;
        return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
    }
    ring[tail % CAPACITY] = (struct held){id, now_ns() + delay_ns};
    tail++;
    n_held++;
    if (tail - head > n_max_held)
        n_max_held = tail - head;
    return 0;
}

static void release(struct nfq_q_handle *qh, int64_t until_ns) {
    while (head != tail && ring[head % CAPACITY].due_ns <= until_ns) {
        nfq_set_verdict(qh, ring[head % CAPACITY].id, NF_ACCEPT, 0, NULL);
        head++;
    }
}

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static void usage(void) {
    fprintf(stderr, "usage: nfq-delay --queue N --delay-ms D   (N 0-65535, D 1-60000)\n");
    exit(2);
}

int main(int argc, char **argv) {
    long queue = -1, delay_ms = -1;
    for (int i = 1; i + 1 < argc; i += 2) {
        char *end;
        long v = strtol(argv[i + 1], &end, 10);
        if (*end != '\0')
            usage();
        if (strcmp(argv[i], "--queue") == 0)
            queue = v;
        else if (strcmp(argv[i], "--delay-ms") == 0)
            delay_ms = v;
        else
            usage();
    }
    if (argc != 5 || queue < 0 || queue > 65535 || delay_ms < 1 || delay_ms > 60000)
        usage();
    delay_ns = delay_ms * 1000000;

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct nfq_handle *h = nfq_open();
    if (!h) {
        perror("nfq_open (needs root / CAP_NET_ADMIN)");
        return 1;
    }
    struct nfq_q_handle *qh = nfq_create_queue(h, (uint16_t)queue, on_packet, NULL);
    if (!qh) {
        fprintf(stderr, "nfq-delay: cannot bind queue %ld (another program holds it?)\n", queue);
        return 1;
    }
    if (nfq_set_mode(qh, NFQNL_COPY_META, 0) < 0 || nfq_set_queue_maxlen(qh, QUEUE_MAXLEN) < 0) {
        fprintf(stderr, "nfq-delay: cannot configure queue %ld\n", queue);
        return 1;
    }
    /* Older kernels lack fail-open: then a full queue drops, which the counters show. */
    if (nfq_set_queue_flags(qh, NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_FAIL_OPEN) < 0)
        fprintf(stderr, "nfq-delay: warning: no fail-open on this kernel\n");
    nfnl_rcvbufsiz(nfq_nfnlh(h), 16 * 1024 * 1024);
    int fd = nfq_fd(h);
    /* A burst beyond the socket buffer must not stop the loop (ENOBUFS). */
    int one = 1;
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);

    printf("ready queue=%ld delay_ms=%ld\n", queue, delay_ms);
    fflush(stdout);

    static char buf[65536] __attribute__((aligned));
    while (!stopping) {
        int timeout_ms = 1000;
        if (head != tail) {
            int64_t wait = ring[head % CAPACITY].due_ns - now_ns();
            timeout_ms = wait <= 0 ? 0 : (int)((wait + 999999) / 1000000);
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, timeout_ms);
        if (r < 0 && errno != EINTR) {
            perror("poll");
            break;
        }
        if (r > 0) {
            for (;;) {
                ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
                if (n < 0)
                    break; /* EAGAIN: drained; ENOBUFS: counted by the kernel */
                nfq_handle_packet(h, buf, (int)n);
            }
        }
        release(qh, now_ns());
    }
    /* Stopping: let every held packet go now rather than have the kernel drop them. */
    release(qh, INT64_MAX);
    nfq_destroy_queue(qh);
    nfq_close(h);
    printf("stopped held=%llu max_held=%llu overflow=%llu\n", (unsigned long long)n_held,
           (unsigned long long)n_max_held, (unsigned long long)n_overflow);
    return 0;
}
