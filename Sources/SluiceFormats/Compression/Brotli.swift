public import SluiceCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Brotli decoding through the system's `libbrotlidec`, loaded at run time like ``Zstd``.
public enum Brotli {
    typealias Decompress = @convention(c) (Int, UnsafePointer<UInt8>?, UnsafeMutablePointer<Int>?, UnsafeMutablePointer<UInt8>?) -> Int32

    static let decompressFunction: Decompress? = {
        for name in ["libbrotlidec.so.1", "libbrotlidec.so", "libbrotlidec.1.dylib", "libbrotlidec.dylib"] {
            guard let h = dlopen(name, RTLD_NOW | RTLD_LOCAL), let f = dlsym(h, "BrotliDecoderDecompress") else { continue }
            return unsafeBitCast(f, to: Decompress.self)
        }
        return nil
    }()

    /// Decompresses into exactly `dst.count` bytes.
    public static func decompress(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer) throws(SluiceError) {
        guard let f = decompressFunction else { throw SluiceError(.unsupported, "brotli data needs libbrotlidec (apt-get install libbrotli1)") }
        var size = dst.count
        let ok = f(src.count, src.baseAddress?.assumingMemoryBound(to: UInt8.self), &size, dst.baseAddress?.assumingMemoryBound(to: UInt8.self))
        guard ok == 1, size == dst.count else { throw SluiceError(.malformedFile, "corrupt brotli data") }
    }
}
