"""shancheng.nodes"""
