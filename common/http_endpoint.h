// A small HTTP endpoint beside a daemon's main service: GET /metrics (the registry in the
// Prometheus text format) and GET /health (200 {"health":"true"} while the health check
// passes, 503 {"health":"false","reason":...} otherwise, as etcd answers).
//
// Threads: serves on a thread of its own from Start() until Stop() (or destruction).
#ifndef COMMON_HTTP_ENDPOINT_H_
#define COMMON_HTTP_ENDPOINT_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "common/metrics.h"

namespace httplib {
class Server;
}

namespace common {

class HttpEndpoint {
 public:
  using HealthCheck = std::function<absl::Status()>;

  // `registry` must outlive the endpoint.
  HttpEndpoint(const Registry* registry, HealthCheck health);
  ~HttpEndpoint();

  // Listens on "host:port"; fails if the address cannot be bound.
  absl::Status Start(const std::string& host_port);
  void Stop();

 private:
  const Registry* const registry_;
  const HealthCheck health_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace common

#endif  // COMMON_HTTP_ENDPOINT_H_
