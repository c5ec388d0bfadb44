public import SluiceCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Zstandard through the system's `libzstd` shared library, loaded at run time: the build
/// needs no headers or `-dev` package, and a machine without the library gets a clear
/// error only when it meets a zstd file.
public enum Zstd {
    typealias Decompress = @convention(c) (UnsafeMutableRawPointer?, Int, UnsafeRawPointer?, Int) -> Int
    typealias Compress = @convention(c) (UnsafeMutableRawPointer?, Int, UnsafeRawPointer?, Int, Int32) -> Int
    typealias Bound = @convention(c) (Int) -> Int
    typealias IsError = @convention(c) (Int) -> UInt32
    typealias ErrorName = @convention(c) (Int) -> UnsafePointer<CChar>?
    typealias ContentSize = @convention(c) (UnsafeRawPointer?, Int) -> UInt64

    struct Library: @unchecked Sendable {
        let decompress: Decompress
        let compress: Compress
        let bound: Bound
        let isError: IsError
        let errorName: ErrorName
        let contentSize: ContentSize
    }

    static let library: Library? = {
        for name in ["libzstd.so.1", "libzstd.so", "libzstd.1.dylib", "libzstd.dylib"] {
            guard let h = dlopen(name, RTLD_NOW | RTLD_LOCAL) else { continue }
            guard let d = dlsym(h, "ZSTD_decompress"), let c = dlsym(h, "ZSTD_compress"), let b = dlsym(h, "ZSTD_compressBound"),
                  let e = dlsym(h, "ZSTD_isError"), let n = dlsym(h, "ZSTD_getErrorName"),
                  let s = dlsym(h, "ZSTD_getFrameContentSize") else { continue }
            return Library(decompress: unsafeBitCast(d, to: Decompress.self), compress: unsafeBitCast(c, to: Compress.self),
                           bound: unsafeBitCast(b, to: Bound.self), isError: unsafeBitCast(e, to: IsError.self),
                           errorName: unsafeBitCast(n, to: ErrorName.self), contentSize: unsafeBitCast(s, to: ContentSize.self))
        }
        return nil
    }()

    public static var isAvailable: Bool { library != nil }

    static func lib() throws(SluiceError) -> Library {
        guard let l = library else { throw SluiceError(.unsupported, "zstd data needs libzstd (apt-get install libzstd1)") }
        return l
    }

    /// Decompresses one zstd frame into exactly `dst.count` bytes.
    public static func decompress(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer) throws(SluiceError) {
        let l = try lib()
        let n = l.decompress(dst.baseAddress, dst.count, src.baseAddress, src.count)
        if l.isError(n) != 0 {
            throw SluiceError(.malformedFile, "corrupt zstd data: \(l.errorName(n).map { String(cString: $0) } ?? "error")")
        }
        guard n == dst.count else { throw SluiceError(.malformedFile, "zstd data holds \(n) bytes, expected \(dst.count)") }
    }

    /// Decompresses one zstd frame whose header states its size, refusing more than `limit` bytes.
    public static func decompressFrame(_ src: UnsafeRawBufferPointer, limit: Int) throws(SluiceError) -> [UInt8] {
        let l = try lib()
        let size = l.contentSize(src.baseAddress, src.count)
        guard size < UInt64.max - 1 else { throw SluiceError(.malformedFile, "zstd frame does not state its size") }
        guard size <= UInt64(limit) else { throw SluiceError(.malformedFile, "zstd frame claims \(size) bytes, more than \(limit) allowed") }
        var out = [UInt8](repeating: 0, count: Int(size))
        try out.withMutableBytes { (d) throws(SluiceError) in try decompress(src, into: d) }
        return out
    }

    /// Compresses `src` at `level`, appending one frame to `out`.
    public static func compress(_ src: UnsafeRawBufferPointer, level: Int32 = 3, into out: inout [UInt8]) throws(SluiceError) {
        let l = try lib()
        let start = out.count
        let cap = l.bound(src.count)
        out.append(contentsOf: repeatElement(0, count: cap))
        let n = out.withUnsafeMutableBytes { o in l.compress(o.baseAddress! + start, cap, src.baseAddress, src.count, level) }
        if l.isError(n) != 0 { out.removeSubrange(start...); throw SluiceError(.io, "zstd compression failed") }
        out.removeSubrange((start + n)...)
    }
}
