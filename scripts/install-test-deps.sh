#!/usr/bin/env bash
# Installs the real upstream servers the integration tests start on loopback:
# Dovecot (IMAP, POP3, submission, LMTP), fetchmail (a real POP3 client),
# Postfix (an SMTPUTF8 submission upstream,
# which Dovecot 2.3 lacks), Radicale (CalDAV/CardDAV), fail2ban (for
# fail2ban-regex against postern's log lines), Cyrus's httpd (CalDAV/CardDAV in
# Fastmail's shape: cyrus-common + cyrus-caldav + sasl2-bin's saslpasswd2, without
# cyrus-imapd, which conflicts with dovecot-imapd), Xandikos behind HAProxy (the
# Nextcloud shape), PostgreSQL (the multi-instance store). Services are never started here: the tests start their own
# instances with config and data in a temp dir.
set -euo pipefail

PACKAGES=(dovecot-core dovecot-imapd dovecot-pop3d dovecot-submissiond dovecot-lmtpd postfix radicale fail2ban fetchmail openssl chromium haproxy xandikos python3-caldav vdirsyncer cyrus-common cyrus-caldav sasl2-bin postgresql)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "test dependencies already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Keep package scripts from starting system services inside containers/CI.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
# Postfix: no system configuration (the tests write their own); never ask.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "installed: ${missing[*]}"
