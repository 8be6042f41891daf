-- transaction.lua - one full SMTP transaction through weir-milter, then a
-- second one that is aborted; every stage must answer "continue".
-- Environment: MILTER_SOCKET (e.g. unix:/tmp/x/milter.sock), QUEUE_ID.
local sock = os.getenv("MILTER_SOCKET")
local qid = os.getenv("QUEUE_ID") or "TESTQ1"
local conn = mt.connect(sock, 5, 1)
if conn == nil then
  mt.echo("FAIL: cannot connect to " .. sock)
  os.exit(1)
end
local function check(what, r)
  if r ~= nil then mt.echo("FAIL: " .. what .. ": " .. r); os.exit(1) end
  if mt.getreply(conn) ~= SMFIR_CONTINUE then
    mt.echo("FAIL: " .. what .. ": reply is not continue"); os.exit(1)
  end
end
if mt.negotiate(conn, nil, nil, nil) ~= nil then mt.echo("FAIL: negotiate"); os.exit(1) end
mt.macro(conn, SMFIC_CONNECT, "j", "relay.weir.test")
check("connect", mt.conninfo(conn, "client.example", "192.0.2.7"))
check("helo", mt.helo(conn, "client.example"))
mt.macro(conn, SMFIC_MAIL, "i", qid, "{auth_authen}", "alice")
check("mail", mt.mailfrom(conn, "<alice@example.com>"))
check("rcpt", mt.rcptto(conn, "<bob@example.net>"))
check("rcpt", mt.rcptto(conn, "<carol@example.org>"))
check("header", mt.header(conn, "From", "Alice <alice@example.com>"))
check("eom", mt.eom(conn))
mt.macro(conn, SMFIC_MAIL, "i", qid .. "B")
check("mail", mt.mailfrom(conn, "<>"))
check("rcpt", mt.rcptto(conn, "<postmaster@example.net>"))
mt.abort(conn)
mt.disconnect(conn)
mt.echo("ok")
