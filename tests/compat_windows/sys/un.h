/* TEST-ONLY (Windows): Winsock has it all; see asyncio_test_compat.h. */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <afunix.h>
