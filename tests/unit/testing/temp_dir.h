#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace warden::testing {

// TempDir is a private temporary directory, removed with everything in it
// when the object goes away (also when a test fails).
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "warden-test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace warden::testing
