#include "cni/installer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace meshlet::cni {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) throw std::runtime_error("cannot read " + path);
  return content.str();
}

bool HasExtension(const std::string& name, std::string_view ext) {
  return name.size() > ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0;
}

// File names in dir (sorted) that end with one of the extensions.
std::vector<std::string> ListFiles(const std::string& dir, std::vector<std::string_view> exts) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (!entry.is_regular_file(ec)) continue;
    for (std::string_view ext : exts) {
      if (HasExtension(name, ext)) names.push_back(name);
    }
  }
  if (ec) throw std::runtime_error("cannot list " + dir + ": " + ec.message());
  std::sort(names.begin(), names.end());
  return names;
}

unsigned ModeOf(const std::string& path, unsigned fallback) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : fallback;
}

// Copies the running binary into bin_dir unless an identical executable is already there.
// Returns true when it wrote.
bool CopyBinary(const InstallOptions& options) {
  std::string target = (fs::path(options.bin_dir) / kBinaryName).string();
  std::string binary = ReadFile(options.source_binary);
  std::error_code ec;
  if (fs::is_regular_file(target, ec) && ModeOf(target, 0) == 0755 && ReadFile(target) == binary) {
    return false;
  }
  WriteFileAtomically(target, binary, 0755);
  return true;
}

}  // namespace

std::string PrimaryConflist(const std::string& conf_dir, std::string* shadowed_by) {
  std::error_code ec;
  if (!fs::is_directory(conf_dir, ec)) {
    throw std::runtime_error("CNI conf dir " + conf_dir + " does not exist");
  }
  std::vector<std::string> lists = ListFiles(conf_dir, {".conflist"});
  if (lists.empty()) {
    std::vector<std::string> singles = ListFiles(conf_dir, {".conf", ".json"});
    if (!singles.empty()) {
      throw std::runtime_error("found " + (fs::path(conf_dir) / singles.front()).string() +
                               " but no *.conflist in " + conf_dir +
                               ": meshlet-cni is a chained plugin and needs a .conflist "
                               "(a \"plugins\" list) to be added to");
    }
    throw std::runtime_error("no *.conflist in " + conf_dir +
                             ": is the node's primary CNI plugin installed yet?");
  }
  if (shadowed_by != nullptr) {
    std::vector<std::string> singles = ListFiles(conf_dir, {".conf", ".json"});
    shadowed_by->clear();
    if (!singles.empty() && singles.front() < lists.front()) *shadowed_by = singles.front();
  }
  return (fs::path(conf_dir) / lists.front()).string();
}

void WriteFileAtomically(const std::string& path, const std::string& content, unsigned mode) {
  fs::path target(path);
  std::string tmp =
      (target.parent_path() / ("." + target.filename().string() + ".meshlet-tmp-XXXXXX")).string();
  int fd = mkstemp(tmp.data());
  if (fd < 0)
    throw std::runtime_error("cannot create a temp file next to " + path + ": " +
                             std::strerror(errno));
  std::string error;
  size_t written = 0;
  while (error.empty() && written < content.size()) {
    ssize_t n = write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) error = std::string("write: ") + std::strerror(errno);
    if (n > 0) written += static_cast<size_t>(n);
  }
  if (error.empty() && fchmod(fd, mode) != 0) error = std::string("chmod: ") + std::strerror(errno);
  if (error.empty() && fsync(fd) != 0) error = std::string("fsync: ") + std::strerror(errno);
  if (close(fd) != 0 && error.empty()) error = std::string("close: ") + std::strerror(errno);
  if (error.empty() && rename(tmp.c_str(), path.c_str()) != 0) {
    error = std::string("rename: ") + std::strerror(errno);
  }
  if (!error.empty()) {
    unlink(tmp.c_str());
    throw std::runtime_error("cannot write " + path + ": " + error);
  }
}

int Install(const InstallOptions& options, std::ostream& out, std::ostream& err) {
  try {
    std::error_code ec;
    if (!fs::is_directory(options.bin_dir, ec)) {
      throw std::runtime_error("CNI bin dir " + options.bin_dir + " does not exist");
    }
    std::string shadowed_by;
    std::string conflist = PrimaryConflist(options.conf_dir, &shadowed_by);
    if (!shadowed_by.empty()) {
      err << "meshlet-cni: warning: " << shadowed_by << " sorts before " << conflist
          << "; a runtime that loads the first file would not run meshlet-cni\n";
    }
    std::string text = ReadFile(conflist);
    std::string edited;
    try {
      edited = AddPluginEntry(text, options.settings);  // validate before changing anything
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(conflist + ": " + e.what());
    }
    std::string binary = (fs::path(options.bin_dir) / kBinaryName).string();
    out << (CopyBinary(options) ? "installed " : "up to date: ") << binary << "\n";
    if (edited == text) {
      out << "unchanged: " << conflist << " already chains meshlet-cni\n";
    } else {
      bool had_entry = HasPluginEntry(text);
      WriteFileAtomically(fs::canonical(conflist).string(), edited, ModeOf(conflist, 0644));
      out << (had_entry ? "updated the meshlet-cni settings in " : "added meshlet-cni to ")
          << conflist << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    err << "meshlet-cni install: " << e.what() << "\n";
    return 1;
  }
}

int Uninstall(const InstallOptions& options, std::ostream& out, std::ostream& err) {
  try {
    bool changed = false;
    std::error_code ec;
    if (fs::is_directory(options.conf_dir, ec)) {
      for (const std::string& name : ListFiles(options.conf_dir, {".conflist"})) {
        std::string path = (fs::path(options.conf_dir) / name).string();
        std::string text = ReadFile(path);
        std::string edited = RemovePluginEntry(text);
        if (edited == text) continue;
        WriteFileAtomically(fs::canonical(path).string(), edited, ModeOf(path, 0644));
        out << "removed meshlet-cni from " << path << "\n";
        changed = true;
      }
    }
    fs::path binary = fs::path(options.bin_dir) / kBinaryName;
    if (fs::exists(fs::symlink_status(binary, ec))) {
      if (!fs::remove(binary, ec) || ec) {
        throw std::runtime_error("cannot remove " + binary.string() + ": " + ec.message());
      }
      out << "removed " << binary.string() << "\n";
      changed = true;
    }
    if (!changed) out << "meshlet-cni is not installed: nothing to do\n";
    return 0;
  } catch (const std::exception& e) {
    err << "meshlet-cni uninstall: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace meshlet::cni
