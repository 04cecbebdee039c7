/**
 * Sans-I/O encoder for the DATA phase towards the upstream (RFC 5321 §4.5.2): message bytes in,
 * wire bytes out. Lines starting with `.` get the transparency dot, every line ends in CRLF, and
 * `end()` closes the message with `.` CRLF.
 *
 * Bare CR and bare LF are turned into CRLF. That is not cosmetic: the front (smtp-server) treats
 * only CRLF `.` CRLF as the end of data, so a client may send `\n.\r\n` inside a message; passed
 * on raw, an upstream that also accepts bare-LF line ends would see the end of the message there
 * and run whatever follows as commands of postern's authenticated session ("SMTP smuggling",
 * CVE-2023-51764/51765/51766). With one line-end form, front and upstream cannot disagree.
 */

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');
const DOT_BYTE = Buffer.from('.');
const TERMINATOR = Buffer.from('.\r\n');

export class DataEncoder {
  private atLineStart = true;
  /** The previous chunk ended in CR: whether it starts a CRLF depends on the next byte. */
  private heldCR = false;

  push(input: Buffer): Buffer {
    let chunk = input;
    if (this.heldCR) {
      this.heldCR = false;
      chunk = Buffer.concat([CRLF.subarray(0, 1), chunk]);
    }
    if (chunk.length > 0 && chunk[chunk.length - 1] === CR) {
      this.heldCR = true;
      chunk = chunk.subarray(0, chunk.length - 1);
    }
    return this.encode(chunk);
  }

  /** The bytes that finish the message: a CRLF if the last line was not terminated, then `.` CRLF. */
  end(): Buffer {
    const parts: Buffer[] = [];
    if (this.heldCR) parts.push(CRLF);
    else if (!this.atLineStart) parts.push(CRLF);
    parts.push(TERMINATOR);
    this.heldCR = false;
    this.atLineStart = true;
    return Buffer.concat(parts);
  }

  /** `chunk` never ends in CR, so every CR here has its next byte in the same chunk. */
  private encode(chunk: Buffer): Buffer {
    const out: Buffer[] = [];
    let runStart = 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i];
      if (byte === CR) {
        if (chunk[i + 1] === LF) {
          i++;
        } else {
          out.push(chunk.subarray(runStart, i), CRLF);
          runStart = i + 1;
        }
        this.atLineStart = true;
      } else if (byte === LF) {
        out.push(chunk.subarray(runStart, i), CRLF);
        runStart = i + 1;
        this.atLineStart = true;
      } else {
        if (this.atLineStart && byte === DOT) {
          out.push(chunk.subarray(runStart, i), DOT_BYTE);
          runStart = i;
        }
        this.atLineStart = false;
      }
    }
    if (out.length === 0) return chunk;
    out.push(chunk.subarray(runStart));
    return Buffer.concat(out);
  }
}
