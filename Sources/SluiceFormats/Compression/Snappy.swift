public import SluiceCore

/// Snappy's raw block format (no framing), written from the format description: a varint
/// length, then literals and back-references. Used by Parquet pages and Avro blocks.
public enum Snappy {
    /// The uncompressed length a block declares (its varint preamble), and where data starts.
    public static func declaredLength(_ src: UnsafeRawBufferPointer) throws(SluiceError) -> (length: Int, start: Int) {
        var v: UInt64 = 0, shift: UInt64 = 0, i = 0
        while true {
            guard i < src.count, i < 5 else { throw SluiceError(.malformedFile, "snappy: bad length preamble") }
            let b = src[i]
            v |= UInt64(b & 0x7F) << shift
            i += 1
            if b & 0x80 == 0 { break }
            shift += 7
        }
        guard v <= UInt64(UInt32.max) else { throw SluiceError(.malformedFile, "snappy: length \(v) is too large") }
        return (Int(v), i)
    }

    /// Decompresses a block into `dst`, which must be exactly the declared length long.
    /// Every offset and length is checked against the buffers; bad input throws.
    public static func decompress(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer) throws(SluiceError) {
        let (length, start) = try declaredLength(src)
        guard length == dst.count else { throw SluiceError(.malformedFile, "snappy: block holds \(length) bytes, expected \(dst.count)") }
        guard length > 0 else { return }
        let s = src.baseAddress!, d = dst.baseAddress!
        let n = src.count
        var ip = start, op = 0
        while ip < n {
            let tag = Int(s.load(fromByteOffset: ip, as: UInt8.self))
            ip += 1
            switch tag & 3 {
            case 0:
                var len = tag >> 2
                if len >= 60 {
                    let extra = len - 59
                    guard ip + extra <= n else { throw SluiceError(.malformedFile, "snappy: truncated literal length") }
                    len = 0
                    for k in 0..<extra { len |= Int(s.load(fromByteOffset: ip + k, as: UInt8.self)) << (8 * k) }
                    ip += extra
                }
                len += 1
                guard len <= n - ip, len <= length - op else { throw SluiceError(.malformedFile, "snappy: literal runs past the end") }
                if len <= 16 && ip + 16 <= n && op + 16 <= length {
                    // Short literal: two 8-byte moves beat a memcpy call (both buffers have room).
                    (d + op).storeBytes(of: s.loadUnaligned(fromByteOffset: ip, as: UInt64.self), as: UInt64.self)
                    (d + op + 8).storeBytes(of: s.loadUnaligned(fromByteOffset: ip + 8, as: UInt64.self), as: UInt64.self)
                } else {
                    (d + op).copyMemory(from: s + ip, byteCount: len)
                }
                ip += len
                op += len
            default:
                var len: Int, offset: Int
                switch tag & 3 {
                case 1:
                    guard ip < n else { throw SluiceError(.malformedFile, "snappy: truncated copy") }
                    len = 4 + ((tag >> 2) & 7)
                    offset = ((tag >> 5) << 8) | Int(s.load(fromByteOffset: ip, as: UInt8.self))
                    ip += 1
                case 2:
                    guard ip + 2 <= n else { throw SluiceError(.malformedFile, "snappy: truncated copy") }
                    len = (tag >> 2) + 1
                    offset = Int(s.load(fromByteOffset: ip, as: UInt8.self)) | Int(s.load(fromByteOffset: ip + 1, as: UInt8.self)) << 8
                    ip += 2
                default:
                    guard ip + 4 <= n else { throw SluiceError(.malformedFile, "snappy: truncated copy") }
                    len = (tag >> 2) + 1
                    offset = 0
                    for k in 0..<4 { offset |= Int(s.load(fromByteOffset: ip + k, as: UInt8.self)) << (8 * k) }
                    ip += 4
                }
                guard offset > 0, offset <= op, len <= length - op else { throw SluiceError(.malformedFile, "snappy: copy out of range") }
                if offset >= 8 && op + len + 8 <= length {
                    // 8 bytes at a time: with offset >= 8 each read is of bytes already written.
                    var k = 0
                    while k < len {
                        (d + op + k).storeBytes(of: (d + op - offset + k).loadUnaligned(as: UInt64.self), as: UInt64.self)
                        k += 8
                    }
                } else if offset >= len {
                    (d + op).copyMemory(from: d + op - offset, byteCount: len)
                } else {
                    for k in 0..<len { d.storeBytes(of: d.load(fromByteOffset: op - offset + k, as: UInt8.self), toByteOffset: op + k, as: UInt8.self) }
                }
                op += len
            }
        }
        guard op == length else { throw SluiceError(.malformedFile, "snappy: block ends after \(op) of \(length) bytes") }
    }

    /// Decompresses a whole block whose length is only known from its preamble, refusing
    /// more than `limit` bytes.
    public static func decompress(_ src: UnsafeRawBufferPointer, limit: Int) throws(SluiceError) -> [UInt8] {
        let (length, _) = try declaredLength(src)
        guard length <= limit else { throw SluiceError(.malformedFile, "snappy: block claims \(length) bytes, more than \(limit) allowed") }
        var out = [UInt8](repeating: 0, count: length)
        try out.withMutableBytes { (d) throws(SluiceError) in try decompress(src, into: d) }
        return out
    }

    /// Largest compressed size of `n` bytes.
    public static func maxCompressedLength(_ n: Int) -> Int { 32 + n + n / 6 }

    /// Compresses `src` (greedy matching over 64 KiB blocks with a hash of 4-byte sequences,
    /// looking less often while nothing matches, as the reference encoder does), appending
    /// the block to `out`.
    public static func compress(_ src: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: maxCompressedLength(src.count) + 8))
        let written = out.withUnsafeMutableBufferPointer { o in
            compress(src, to: o.baseAddress! + start)
        }
        out.removeSubrange((start + written)...)
    }

    /// Compresses into `dst`, which has room for ``maxCompressedLength(_:)`` bytes. Returns
    /// the bytes written.
    /// (Not named `into:`: an `&array` argument would silently convert to this pointer.)
    static func compress(_ src: UnsafeRawBufferPointer, to dst: UnsafeMutablePointer<UInt8>) -> Int {
        var o = 0
        var v = UInt64(src.count)
        while v >= 0x80 { dst[o] = UInt8(v & 0x7F) | 0x80; o += 1; v >>= 7 }
        dst[o] = UInt8(v)
        o += 1
        guard src.count > 0 else { return o }
        let s = src.baseAddress!
        // Offsets within the 64 KiB block fit 16 bits: a 32 KiB table stays in L1. An entry
        // of 0 needs no "empty" mark, as every candidate is checked against the input.
        let table = UnsafeMutablePointer<UInt16>.allocate(capacity: 1 << 14)
        defer { table.deallocate() }
        var blockStart = 0
        while blockStart < src.count {
            let blockEnd = min(src.count, blockStart + 65_536)
            table.initialize(repeating: 0, count: 1 << 14)
            let b = s + blockStart
            let limit = blockEnd - blockStart
            var literalStart = blockStart
            var i = 0  // within the block
            var skip = 32
            while i &+ 4 <= limit {
                let word = b.loadUnaligned(fromByteOffset: i, as: UInt32.self)
                let h = Int(truncatingIfNeeded: (word &* 0x1E35_A7BD) >> 18)
                let candidate = Int(table[h])
                table[h] = UInt16(truncatingIfNeeded: i)
                if candidate < i, b.loadUnaligned(fromByteOffset: candidate, as: UInt32.self) == word {
                    var len = 4
                    while i &+ len &+ 8 <= limit {
                        let x = b.loadUnaligned(fromByteOffset: candidate &+ len, as: UInt64.self) ^ b.loadUnaligned(fromByteOffset: i &+ len, as: UInt64.self)
                        if x != 0 { len &+= x.trailingZeroBitCount >> 3; break }
                        len &+= 8
                    }
                    if i &+ len &+ 8 > limit {
                        while i &+ len < limit && b.load(fromByteOffset: candidate &+ len, as: UInt8.self) == b.load(fromByteOffset: i &+ len, as: UInt8.self) { len &+= 1 }
                    }
                    o = emitLiteral(s, literalStart, blockStart + i, dst, o)
                    o = emitCopy(offset: i - candidate, length: len, dst, o)
                    i &+= len
                    literalStart = blockStart + i
                    skip = 32
                } else {
                    let step = skip >> 5  // the reference encoder's pace: faster the longer nothing matches
                    skip &+= step
                    i &+= step
                }
            }
            o = emitLiteral(s, literalStart, blockEnd, dst, o)
            blockStart = blockEnd
        }
        return o
    }

    static func emitLiteral(_ s: UnsafeRawPointer, _ from: Int, _ to: Int, _ d: UnsafeMutablePointer<UInt8>, _ o: Int) -> Int {
        let len = to - from
        guard len > 0 else { return o }
        var o = o
        let n = len - 1
        if n < 60 {
            d[o] = UInt8(n << 2); o += 1
        } else if n < 1 << 8 {
            d[o] = 60 << 2; d[o + 1] = UInt8(n); o += 2
        } else if n < 1 << 16 {
            d[o] = 61 << 2; d[o + 1] = UInt8(n & 0xFF); d[o + 2] = UInt8(n >> 8); o += 3
        } else {
            d[o] = 62 << 2; d[o + 1] = UInt8(n & 0xFF); d[o + 2] = UInt8((n >> 8) & 0xFF); d[o + 3] = UInt8(n >> 16); o += 4
        }
        (d + o).update(from: (s + from).assumingMemoryBound(to: UInt8.self), count: len)
        return o + len
    }

    static func emitCopy(offset: Int, length: Int, _ d: UnsafeMutablePointer<UInt8>, _ o: Int) -> Int {
        var len = length
        var o = o
        // Long matches go out as 64-byte copies; keep at least 4 for the last piece.
        while len >= 68 { o = copy2(offset, 64, d, o); len -= 64 }
        if len > 64 { o = copy2(offset, 60, d, o); len -= 60 }
        if len < 12 && offset < 2048 {
            d[o] = UInt8(1 | ((len - 4) << 2) | ((offset >> 8) << 5))
            d[o + 1] = UInt8(offset & 0xFF)
            return o + 2
        }
        return copy2(offset, len, d, o)
    }

    static func copy2(_ offset: Int, _ len: Int, _ d: UnsafeMutablePointer<UInt8>, _ o: Int) -> Int {
        d[o] = UInt8(2 | ((len - 1) << 2))
        d[o + 1] = UInt8(offset & 0xFF)
        d[o + 2] = UInt8(offset >> 8)
        return o + 3
    }
}
