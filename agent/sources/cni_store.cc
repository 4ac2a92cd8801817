#include "agent/sources/cni_store.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace meshlet {

Status CniStore::load() {
  pods_.clear();
  if (file_.empty()) return Status::Ok();
  std::ifstream in(file_);
  if (!in) return Status::Ok();  // nothing enrolled yet
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_array()) {
    return Error("CNI state " + file_ + " is not a JSON array; remove it to start afresh");
  }
  for (const auto& e : j) {
    if (!e.is_object()) continue;
    CniPod p;
    p.ns = e.value("namespace", "");
    p.name = e.value("name", "");
    p.uid = e.value("uid", "");
    p.container_id = e.value("container_id", "");
    p.netns = e.value("netns", "");
    if (e.contains("ips") && e["ips"].is_array()) {
      for (const auto& ip : e["ips"]) {
        if (!ip.is_string()) continue;
        if (auto a = IpAddr::parse(ip.get<std::string>())) p.ips.push_back(*a);
      }
    }
    if (p.ns.empty() || p.name.empty()) continue;
    put(p);
  }
  return Status::Ok();
}

Status CniStore::save() const {
  if (file_.empty()) return Status::Ok();
  nlohmann::json j = nlohmann::json::array();
  for (const auto& [key, p] : pods_) {
    nlohmann::json ips = nlohmann::json::array();
    for (const auto& ip : p.ips) ips.push_back(ip.toString());
    j.push_back({{"namespace", p.ns},
                 {"name", p.name},
                 {"uid", p.uid},
                 {"container_id", p.container_id},
                 {"netns", p.netns},
                 {"ips", ips}});
  }
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(file_).parent_path(), ec);
  std::string tmp = file_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2) << "\n";
    out.flush();
    if (!out) return Error::fromErrno("cannot write CNI state " + tmp, errno);
  }
  if (std::rename(tmp.c_str(), file_.c_str()) != 0) {
    return Error::fromErrno("cannot replace CNI state " + file_, errno);
  }
  return Status::Ok();
}

bool CniStore::remove(const std::string& container_id, const std::string& ns,
                      const std::string& name) {
  for (auto it = pods_.begin(); it != pods_.end(); ++it) {
    if (!container_id.empty() && it->second.container_id == container_id) {
      pods_.erase(it);
      return true;
    }
  }
  return pods_.erase(ns + "/" + name) > 0;
}

const CniPod* CniStore::find(const std::string& ns, const std::string& name) const {
  auto it = pods_.find(ns + "/" + name);
  return it == pods_.end() ? nullptr : &it->second;
}

Snapshot mergeCniPods(const Snapshot& file, const std::map<std::string, CniPod>& cni,
                      const std::string& node_name) {
  Snapshot s = file;
  for (const auto& [key, c] : cni) {
    Pod* known = nullptr;
    for (auto& p : s.pods.mut()) {
      if (p.meta.ns == c.ns && p.meta.name == c.name) known = &p;
    }
    if (known) {
      known->netns = c.netns;
      known->node_name = node_name;
      if (known->pod_ips.empty()) known->pod_ips = c.ips;
      if (known->meta.uid.empty()) known->meta.uid = c.uid;
      known->enrolled_by = "cni";
      continue;
    }
    Pod p;
    p.meta.ns = c.ns;
    p.meta.name = c.name;
    p.meta.uid = c.uid;
    p.meta.origin.file = "(cni)";
    p.node_name = node_name;
    p.pod_ips = c.ips;
    p.netns = c.netns;
    p.ready = true;
    p.phase = "Running";
    p.enrolled_by = "cni";
    s.pods.push_back(std::move(p));
  }
  return s;
}

}  // namespace meshlet
