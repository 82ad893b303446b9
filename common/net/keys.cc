#include "common/net/keys.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

namespace prunelab {
namespace {

StatusOr<std::string> Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read key file " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of(" \t\r\n");
  return s.substr(a, b - a + 1);
}

}  // namespace

bool IsZ85Key(const std::string& key) {
  static const std::string alphabet =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
  return key.size() == 40 && key.find_first_not_of(alphabet) == std::string::npos;
}

Status WriteKeyPair(const std::string& base, const CurveKeyPair& keys) {
  struct stat st;
  if (stat((base + ".key").c_str(), &st) == 0)
    return Status::InvalidArgument(base + ".key exists; remove it first or pick another name");
  {
    std::ofstream key(base + ".key", std::ios::trunc);
    if (!key) return Status::IoError("cannot write " + base + ".key");
    key << "# prunelab CURVE key pair: keep this file secret\npublic = " << keys.public_key
        << "\nsecret = " << keys.secret_key << "\n";
  }
  chmod((base + ".key").c_str(), 0600);
  std::ofstream pub(base + ".pub", std::ios::trunc);
  if (!pub) return Status::IoError("cannot write " + base + ".pub");
  pub << keys.public_key << "\n";
  return Status::Ok();
}

StatusOr<CurveKeyPair> ReadKeyPair(const std::string& path) {
  auto text = Slurp(path);
  if (!text.ok()) return text.status();
  CurveKeyPair k;
  std::istringstream in(text.value());
  std::string line;
  while (std::getline(in, line)) {
    line = Trim(line);
    auto eq = line.find('=');
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    std::string name = Trim(line.substr(0, eq)), value = Trim(line.substr(eq + 1));
    if (name == "public") k.public_key = value;
    if (name == "secret") k.secret_key = value;
  }
  if (!IsZ85Key(k.public_key) || !IsZ85Key(k.secret_key))
    return Status::InvalidArgument(path + ": not a key pair (expected 'public = ...' and 'secret = ...' lines of 40 "
                                          "Z85 characters, as `prunelab keygen` writes)");
  return k;
}

StatusOr<std::string> ReadPublicKey(const std::string& path) {
  auto text = Slurp(path);
  if (!text.ok()) return text.status();
  std::string t = Trim(text.value());
  if (IsZ85Key(t)) return t;
  auto pair = ReadKeyPair(path);
  if (pair.ok()) return pair->public_key;
  return Status::InvalidArgument(path + ": not a public key (expected 40 Z85 characters, as in a NAME.pub file)");
}

StatusOr<std::set<std::string>> ReadAllowList(const std::string& path) {
  auto text = Slurp(path);
  if (!text.ok()) return text.status();
  std::set<std::string> keys;
  std::istringstream in(text.value());
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    // The key is the first word; Z85 keys may contain '#', so a line is a comment only when
    // its first word is not a key and starts with '#'.
    std::istringstream words(line);
    std::string key;
    if (!(words >> key)) continue;
    if (IsZ85Key(key)) {
      keys.insert(key);
      continue;
    }
    if (key[0] == '#') continue;
    return Status::InvalidArgument(path + ":" + std::to_string(n) + ": not a public key (40 Z85 characters expected)");
  }
  return keys;
}

StatusOr<ClientSecurity> LoadClientSecurity(const std::string& key_file, const std::string& server_pub_file) {
  ClientSecurity s;
  if (key_file.empty() && server_pub_file.empty()) return s;
  if (key_file.empty() || server_pub_file.empty())
    return Status::InvalidArgument("CURVE needs both this peer's key pair (--curve-key NAME.key) and the coordinator's "
                                   "public key (--server-key coordinator.pub)");
  auto pair = ReadKeyPair(key_file);
  if (!pair.ok()) return pair.status();
  auto server = ReadPublicKey(server_pub_file);
  if (!server.ok()) return server.status();
  s.keys = pair.value();
  s.server_key = server.value();
  return s;
}

}  // namespace prunelab
