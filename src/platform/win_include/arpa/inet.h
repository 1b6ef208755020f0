/*
 * Windows build only (CMakeLists.txt adds this directory to the library's include path):
 * inet_pton / inet_ntop and the byte-order functions live in Winsock's ws2tcpip.h.
 */
#ifndef ASYNCIO_WIN_ARPA_INET_H
#define ASYNCIO_WIN_ARPA_INET_H
#include <winsock2.h>
#include <ws2tcpip.h>
#endif
