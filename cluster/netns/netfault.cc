// netfault: netem's delay and loss for kernels built without sch_netem. Packets that an
// iptables rule sends to NFQUEUE number --queue are held for --delay-ms and then accepted, or
// dropped with probability --loss (decided as they arrive, so the order is kept). Runs in the
// network namespace whose packets it handles; stops on SIGINT/SIGTERM (held packets are then
// accepted on the way out).
//
//   ip netns exec NS iptables -A OUTPUT -o eth0 -j NFQUEUE --queue-num 7
//   ip netns exec NS netfault --queue 7 --delay-ms 50 --loss 0.05
//
// Only the project's multi-host tests use it (cluster/netns/lab.sh, lab_fault).
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <time.h>

extern "C" {
#include <libnetfilter_queue/libnetfilter_queue.h>
}

namespace {

volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

double NowMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct Held {
  uint32_t id;
  double release_ms;
};

struct State {
  double delay_ms = 0;
  double loss = 0;
  std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> uniform{0.0, 1.0};
  std::deque<Held> held;
  nfq_q_handle* queue = nullptr;
  unsigned long long seen = 0, dropped = 0;
};

int OnPacket(nfq_q_handle* qh, nfgenmsg*, nfq_data* nfa, void* data) {
  auto* st = static_cast<State*>(data);
  nfqnl_msg_packet_hdr* ph = nfq_get_msg_packet_hdr(nfa);
  if (!ph) return 0;
  uint32_t id = ntohl(ph->packet_id);
  ++st->seen;
  if (st->loss > 0 && st->uniform(st->rng) < st->loss) {
    ++st->dropped;
    return nfq_set_verdict(qh, id, NF_DROP, 0, nullptr);
  }
  if (st->delay_ms <= 0) return nfq_set_verdict(qh, id, NF_ACCEPT, 0, nullptr);
  st->held.push_back({id, NowMs() + st->delay_ms});
  return 0;
}

bool ParseDouble(const char* s, double lo, double hi, double* out) {
  char* end = nullptr;
  double v = std::strtod(s, &end);
  if (!end || *end || v < lo || v > hi) return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  State st;
  double queue_num = -1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    bool ok = v != nullptr;
    if (a == "--queue") ok = ok && ParseDouble(v, 0, 65535, &queue_num);
    else if (a == "--delay-ms") ok = ok && ParseDouble(v, 0, 60000, &st.delay_ms);
    else if (a == "--loss") ok = ok && ParseDouble(v, 0, 1, &st.loss);
    else {
      std::fprintf(stderr, "netfault: unknown flag '%s'; usage: netfault --queue N [--delay-ms MS] [--loss 0..1]\n", a.c_str());
      return 2;
    }
    if (!ok) {
      std::fprintf(stderr, "netfault: %s wants a number (--queue 0..65535, --delay-ms 0..60000, --loss 0..1)\n", a.c_str());
      return 2;
    }
    ++i;
  }
  if (queue_num < 0) {
    std::fprintf(stderr, "netfault: --queue N is required (the NFQUEUE number of the iptables rule)\n");
    return 2;
  }
  nfq_handle* h = nfq_open();
  if (!h) {
    std::perror("netfault: nfq_open (root, and a kernel with NETFILTER_NETLINK_QUEUE?)");
    return 1;
  }
  st.queue = nfq_create_queue(h, static_cast<uint16_t>(queue_num), &OnPacket, &st);
  if (!st.queue || nfq_set_mode(st.queue, NFQNL_COPY_META, 0) < 0) {
    std::fprintf(stderr, "netfault: cannot bind NFQUEUE %d (another netfault on it?)\n", static_cast<int>(queue_num));
    return 1;
  }
  nfq_set_queue_maxlen(st.queue, 65536);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  int fd = nfq_fd(h);
  int big = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
  std::fprintf(stderr, "netfault: queue %d: delay %.1f ms, loss %.1f %%\n", static_cast<int>(queue_num), st.delay_ms,
               st.loss * 100);
  char buf[65536] __attribute__((aligned));
  while (!g_stop) {
    double now = NowMs();
    while (!st.held.empty() && st.held.front().release_ms <= now) {
      nfq_set_verdict(st.queue, st.held.front().id, NF_ACCEPT, 0, nullptr);
      st.held.pop_front();
    }
    int wait_ms = st.held.empty() ? 100 : static_cast<int>(st.held.front().release_ms - now) + 1;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, wait_ms) <= 0) continue;
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) nfq_handle_packet(h, buf, static_cast<int>(n));
  }
  for (const Held& p : st.held) nfq_set_verdict(st.queue, p.id, NF_ACCEPT, 0, nullptr);
  std::fprintf(stderr, "netfault: %llu packets, %llu dropped\n", st.seen, st.dropped);
  nfq_destroy_queue(st.queue);
  nfq_close(h);
  return 0;
}
