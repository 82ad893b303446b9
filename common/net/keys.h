// CURVE key files. `prunelab keygen DIR/NAME` writes NAME.key (public + secret, mode 0600)
// and NAME.pub (the public key, to give to the other side). An allow-list file has one
// public key per line (a NAME.pub's contents), optionally followed by a note; lines
// starting with '#' are comments (a key itself may contain '#': the first word is tried
// as a key first).
#pragma once

#include <set>
#include <string>

#include "common/base/status.h"
#include "common/net/transport.h"

namespace prunelab {

// Writes base + ".key" and base + ".pub"; refuses to overwrite an existing key.
Status WriteKeyPair(const std::string& base, const CurveKeyPair& keys);
StatusOr<CurveKeyPair> ReadKeyPair(const std::string& path);
// The public key in a .pub file (or the public half of a .key file).
StatusOr<std::string> ReadPublicKey(const std::string& path);
StatusOr<std::set<std::string>> ReadAllowList(const std::string& path);
bool IsZ85Key(const std::string& key);

// Client side from files: key pair + the coordinator's public key (both empty: plain).
StatusOr<ClientSecurity> LoadClientSecurity(const std::string& key_file, const std::string& server_pub_file);

}  // namespace prunelab
