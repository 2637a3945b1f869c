#include "core/file_io.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

namespace warden::core {

Result<std::string> readFile(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return notFound(fmt::format("{}: no such file", path));
    return unavailable(fmt::format("{}: cannot open: {}", path, std::strerror(err)));
  }
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return unavailable(fmt::format("{}: read failed: {}", path, std::strerror(err)));
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max_bytes) {
      ::close(fd);
      return invalidArgument(fmt::format("{}: larger than the limit of {} bytes", path, max_bytes));
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

Status writeFileAtomic(const std::string& path, std::string_view content, mode_t mode) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return unavailable(fmt::format("{}: cannot create: {}", tmp, std::strerror(errno)));
  // The umask may have narrowed |mode|; set it exactly.
  if (::fchmod(fd, mode) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return unavailable(fmt::format("{}: chmod failed: {}", tmp, std::strerror(err)));
  }
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return unavailable(fmt::format("{}: write failed: {}", tmp, std::strerror(err)));
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return unavailable(fmt::format("{}: fsync failed: {}", tmp, std::strerror(errno)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return unavailable(fmt::format("{}: rename failed: {}", path, std::strerror(err)));
  }
  return Status::ok();
}

Status makePrivateDir(const std::string& path) {
  std::error_code ec;
  std::filesystem::path p(path);
  if (std::filesystem::is_directory(p, ec)) return Status::ok();
  if (p.has_parent_path() && !p.parent_path().empty()) {
    std::filesystem::create_directories(p.parent_path(), ec);
    if (ec) return unavailable(fmt::format("{}: cannot create: {}", p.parent_path().string(), ec.message()));
  }
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return unavailable(fmt::format("{}: cannot create directory: {}", path, std::strerror(errno)));
  }
  ::chmod(path.c_str(), 0700);
  return Status::ok();
}

}  // namespace warden::core
