#include "common/http_endpoint.h"

#include <httplib.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace common {

HttpEndpoint::HttpEndpoint(const Registry* registry, HealthCheck health)
    : registry_(registry), health_(std::move(health)), server_(new httplib::Server) {
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry_->Render(), "text/plain; version=0.0.4");
  });
  server_->Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const absl::Status s = health_ ? health_() : absl::OkStatus();
    if (s.ok()) {
      res.set_content("{\"health\":\"true\"}", "application/json");
      return;
    }
    res.status = 503;
    std::string reason(s.message());
    for (char& c : reason) {
      if (c == '"' || c == '\\') c = '\'';
    }
    res.set_content(absl::StrCat("{\"health\":\"false\",\"reason\":\"", reason, "\"}"),
                    "application/json");
  });
}

HttpEndpoint::~HttpEndpoint() { Stop(); }

absl::Status HttpEndpoint::Start(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(host_port.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(absl::StrCat("bad address \"", host_port, "\""));
  }
  std::string host = host_port.substr(0, colon);
  if (host.empty()) host = "0.0.0.0";
  if (!server_->bind_to_port(host.c_str(), port)) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", host_port));
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return absl::OkStatus();
}

void HttpEndpoint::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace common
