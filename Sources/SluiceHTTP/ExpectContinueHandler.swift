import NIOCore
import NIOHTTPTypes
import HTTPTypes

/// Answers `Expect: 100-continue` with an interim `100 Continue`, which Hummingbird does
/// not do on its own: without it curl and other clients wait a second before sending
/// bodies over 1 MB. Sits between HTTP decoding and request handling.
final class ExpectContinueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// A body declared larger than this gets no `100 Continue`: the route's 413 answers it
    /// before the client sends the body.
    let maxBodyBytes: Int64

    init(maxBodyBytes: Int64 = .max) { self.maxBodyBytes = maxBodyBytes }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(var head) = unwrapInboundIn(data), head.headerFields[.expect]?.lowercased() == "100-continue" {
            head.headerFields[.expect] = nil
            let declared = head.headerFields[.contentLength].flatMap { Int64($0) } ?? 0
            if declared <= maxBodyBytes { context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil) }
            context.fireChannelRead(wrapInboundOut(.head(head)))
            return
        }
        context.fireChannelRead(data)
    }
}
