"""shancheng.sdk"""
