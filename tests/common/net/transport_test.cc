// Real ZeroMQ sockets on loopback.
#include <gtest/gtest.h>

#include <thread>

#include <fstream>

#include "common/net/keys.h"
#include "tests/status_matchers.h"
#include "common/net/rpc.h"
#include "tests/test_util.h"
#include "common/net/transport.h"

namespace prunelab {
namespace {

using prunelab::testing::IsError;

TEST(TransportTest, RouterAndDealerExchangeOverTcp) {
  ZmqContext ctx;
  auto router = RouterSocket::Bind(ctx, "tcp://127.0.0.1:*");
  ASSERT_TRUE(router.ok()) << router.status().ToString();
  std::string ep = router.value()->endpoint();
  ASSERT_NE(ep.find("tcp://127.0.0.1:"), std::string::npos);
  auto dealer = DealerSocket::Connect(ctx, ep, "client-1");
  ASSERT_TRUE(dealer.ok());
  ASSERT_TRUE(dealer.value()->Send("hello").ok());
  std::optional<PeerMessage> got;
  for (int i = 0; i < 200 && !got; ++i) {
    got = router.value()->TryReceive();
    if (!got) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->peer, "client-1");
  EXPECT_EQ(got->payload, "hello");
  ASSERT_TRUE(router.value()->Send(got->peer, "world").ok());
  auto reply = dealer.value()->Receive(2000);
  ASSERT_TRUE(reply.ok());
  ASSERT_TRUE(reply.value().has_value());
  EXPECT_EQ(*reply.value(), "world");
}

TEST(TransportTest, RpcTimesOutCleanlyWhenNobodyAnswers) {
  ZmqContext ctx;
  auto router = RouterSocket::Bind(ctx, "tcp://127.0.0.1:*");
  ASSERT_TRUE(router.ok());
  RpcClient rpc(ctx, router.value()->endpoint());
  auto r = rpc.Call(RequestWorkMsg{"w"}, 100);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kUnavailable);
}

// A peer that refuses the handshake closes the connection, and a DEALER without a connection
// has nowhere to queue: an unbounded send blocked forever there (found as a hang of the CURVE
// service test under load, when the refusal beat the client's send). Every send is bounded.
TEST(TransportTest, ASendOnAConnectionThePeerRefusedFailsInsteadOfBlocking) {
  if (!CurveAvailable()) GTEST_SKIP() << "libzmq without CURVE";
  ZmqContext ctx;
  auto keys = GenerateCurveKeyPair().value();
  auto router = RouterSocket::Bind(ctx, "tcp://127.0.0.1:*", ServerSecurity{keys, "workers"});
  ASSERT_TRUE(router.ok()) << router.status().ToString();
  auto plain = DealerSocket::Connect(ctx, router.value()->endpoint());  // no CURVE keys: refused
  ASSERT_TRUE(plain.ok());
  Status st = Status::Ok();
  int sends = 0;
  // The first sends are queued while the handshake is under way; once the router refuses it,
  // the socket has no connection left (each try waits at most 100 + 50 ms).
  for (; sends < 100 && st.ok(); ++sends) {
    st = plain.value()->Send("hello", 100);
    if (st.ok()) (void)plain.value()->Receive(50);
  }
  ASSERT_FALSE(st.ok()) << "every send was taken after " << sends << " tries: the connection was never closed";
  EXPECT_EQ(st.code(), Status::Code::kUnavailable);
  EXPECT_NE(st.message().find(router.value()->endpoint()), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("within 100 ms"), std::string::npos) << st.ToString();
  // Through the RPC client the same is a bounded, named failure, and the next call reconnects.
  RpcClient rpc(ctx, router.value()->endpoint());
  for (int i = 0; i < 3; ++i) {
    auto r = rpc.Call(RequestWorkMsg{"w"}, 200);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Status::Code::kUnavailable);
  }
}

TEST(TransportTest, BindConflictIsAClearError) {
  ZmqContext ctx;
  auto a = RouterSocket::Bind(ctx, "tcp://127.0.0.1:*");
  ASSERT_TRUE(a.ok());
  auto b = RouterSocket::Bind(ctx, a.value()->endpoint());
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("cannot bind"), std::string::npos);
}

}  // namespace
}  // namespace prunelab

namespace prunelab {
namespace {

TEST(KeysTest, AllowListsTakeKeysWithHashesCommentsAndNotesAndRejectJunk) {
  testing::TempDir dir;
  const std::string hashy = "#bcdefghij0123456789ABCDEFGHIJ.-:+=^!/*?";  // 40 Z85 characters, leading '#'
  ASSERT_TRUE(IsZ85Key(hashy));
  std::ofstream(dir.path() + "/ok.allow") << "# lab workers\n\n" << hashy << "\n"
                                          << "0123456789abcdefghijABCDEFGHIJ0123456789 worker-b\n";
  auto keys = ReadAllowList(dir.path() + "/ok.allow");
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  EXPECT_EQ(keys->size(), 2u);
  EXPECT_TRUE(keys->count(hashy));
  std::ofstream(dir.path() + "/bad.allow") << "not-a-key\n";
  auto bad = ReadAllowList(dir.path() + "/bad.allow");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("bad.allow:1"), std::string::npos);
  if (CurveAvailable()) {
    auto pair = GenerateCurveKeyPair();
    ASSERT_TRUE(pair.ok());
    ASSERT_TRUE(WriteKeyPair(dir.path() + "/me", pair.value()).ok());
    EXPECT_TRUE(IsError(WriteKeyPair(dir.path() + "/me", pair.value()), Status::Code::kInvalidArgument, "me.key exists; remove it first")) << "never overwrites a key";
    auto back = ReadKeyPair(dir.path() + "/me.key");
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->secret_key, pair->secret_key);
    EXPECT_EQ(ReadPublicKey(dir.path() + "/me.pub").value(), pair->public_key);
  }
}

}  // namespace
}  // namespace prunelab
