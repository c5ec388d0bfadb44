/// A fast 64-bit hash of a byte string, eight bytes at a time, for tables and filters held in
/// memory (never stored: it may change from one version to the next).
public enum ByteHash {
    /// `seed` chains several values into one hash (each value's length is folded in too).
    @inline(__always)
    public static func hash(_ v: UnsafeRawBufferPointer, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> UInt64 {
        var h: UInt64 = seed ^ UInt64(v.count)
        var i = 0
        let n = v.count
        if let p = v.baseAddress {
            while i + 8 <= n {
                h = (h ^ p.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x100_0000_01B3 &+ (h >> 29)
                i += 8
            }
            var tail: UInt64 = 0
            var shift: UInt64 = 0
            while i < n {
                tail |= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) << shift
                shift += 8
                i += 1
            }
            h = (h ^ tail) &* 0x100_0000_01B3
        }
        h ^= h >> 32
        h = h &* 0xD6E8_FEB8_6659_FD93
        return h ^ (h >> 32)
    }
}
