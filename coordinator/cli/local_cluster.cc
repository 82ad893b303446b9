#include "coordinator/cli/local_cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "common/base/clock.h"
#include "common/net/transport.h"
#include "coordinator/http/http.h"
#include "coordinator/store/timed_store.h"
#include "coordinator/scheduler/coordinator.h"
#include "coordinator/service/service.h"
#include "coordinator/store/store.h"

namespace prunelab::coordinator {

struct EmbeddedCoordinator::Parts {
  std::unique_ptr<Store> store;
  std::unique_ptr<TimedStore> timed;
  std::unique_ptr<ArtifactStore> artifacts;
  SystemClock clock;
  std::unique_ptr<Coordinator> core;
  ZmqContext ctx;
  DashboardState dashboard;
  std::unique_ptr<CoordinatorService> service;
  std::unique_ptr<HttpServer> web;
  std::thread loop;
};

StatusOr<std::unique_ptr<EmbeddedCoordinator>> EmbeddedCoordinator::Start(const std::string& data_dir, int http_port) {
  auto p = std::make_unique<Parts>();
  auto store = OpenRocksDbStore(data_dir + "/store");
  if (!store.ok()) return Status::IoError(store.status().ToString() + "; use another --data-dir");
  p->store = std::move(store).value();
  p->timed = std::make_unique<TimedStore>(*p->store);
  auto artifacts = OpenFileArtifactStore(data_dir + "/artifacts", p->timed.get(), kDefaultMinFreeBytes);
  if (!artifacts.ok()) return Status::IoError(artifacts.status().ToString() + "; use another --data-dir");
  p->artifacts = std::move(artifacts).value();
  p->core = std::make_unique<Coordinator>(*p->timed, *p->artifacts, p->clock);
  if (Status st = p->core->Recover(); !st.ok()) return Status::IoError("cannot recover " + data_dir + ": " + st.ToString());
  ServiceOptions so;
  so.worker_endpoint = "tcp://127.0.0.1:*";
  so.client_endpoint = "tcp://127.0.0.1:*";
  p->dashboard.store_write = &p->timed->write_latency;
  p->dashboard.store_sync = &p->timed->sync_latency;
  so.dashboard = &p->dashboard;
  p->service = std::make_unique<CoordinatorService>(p->ctx, *p->core, so);
  PRUNELAB_RETURN_IF_ERROR(p->service->Bind());
  if (http_port >= 0) {
    p->web = std::make_unique<HttpServer>("127.0.0.1", static_cast<uint16_t>(http_port), *p->timed, p->dashboard);
    PRUNELAB_RETURN_IF_ERROR(p->web->Start());
  }
  CoordinatorService* service = p->service.get();
  p->loop = std::thread([service] { service->Run(/*handle_signals=*/false); });
  return std::unique_ptr<EmbeddedCoordinator>(new EmbeddedCoordinator(std::move(p)));
}

EmbeddedCoordinator::EmbeddedCoordinator(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

EmbeddedCoordinator::~EmbeddedCoordinator() {
  if (parts_->web) parts_->web->Stop();
  parts_->service->Stop();
  if (parts_->loop.joinable()) parts_->loop.join();
}

const std::string& EmbeddedCoordinator::worker_endpoint() const { return parts_->service->worker_endpoint(); }
const std::string& EmbeddedCoordinator::client_endpoint() const { return parts_->service->client_endpoint(); }
uint16_t EmbeddedCoordinator::http_port() const { return parts_->web ? parts_->web->port() : 0; }
ZmqContext& EmbeddedCoordinator::context() { return parts_->ctx; }

LocalWorkers::~LocalWorkers() { Stop(/*immediately=*/true); }

std::vector<pid_t> LocalWorkers::pids() const {
  std::vector<pid_t> out;
  for (const Child& c : workers_) out.push_back(c.pid);
  return out;
}

void LocalWorkers::Spawn(const std::vector<std::string>& args, const std::string& log_path) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary_.c_str()));
  for (const auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive `prunelab run`
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    execv(binary_.c_str(), argv.data());
    std::fprintf(stderr, "cannot start %s: %s\n", binary_.c_str(), std::strerror(errno));
    _exit(127);
  }
  if (pid > 0) workers_.push_back(Child{pid, log_path});
}

int LocalWorkers::Poll(const std::function<void(size_t, int, const std::string&)>& on_exit) {
  int alive = 0;
  for (size_t i = 0; i < workers_.size(); ++i) {
    Child& c = workers_[i];
    if (c.exited) continue;
    int status = 0;
    if (waitpid(c.pid, &status, WNOHANG) == c.pid) {
      c.exited = true;
      if (on_exit) on_exit(i, status, c.log);
    } else {
      ++alive;
    }
  }
  return alive;
}

void LocalWorkers::Stop(bool immediately, int grace_ms) {
  for (Child& c : workers_)
    if (!c.exited) kill(c.pid, SIGTERM);
  if (immediately) {
    // The first signal is taken as "drain"; the second as "abandon the task now".
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (Child& c : workers_)
      if (!c.exited) kill(c.pid, SIGTERM);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
  for (Child& c : workers_) {
    while (!c.exited && std::chrono::steady_clock::now() < deadline) {
      if (waitpid(c.pid, nullptr, WNOHANG) == c.pid) c.exited = true;
      else std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!c.exited) {
      kill(c.pid, SIGKILL);
      waitpid(c.pid, nullptr, 0);
      c.exited = true;
    }
  }
}

}  // namespace prunelab::coordinator
